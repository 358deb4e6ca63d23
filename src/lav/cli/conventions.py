"""`lav conventions`: which coordinate convention fits a model's answers (`lav.presets.cli`)."""

from __future__ import annotations

import argparse

NAME = "conventions"


def add_parser(sub) -> None:
    from ..presets.cli import add_conventions_parser

    add_conventions_parser(sub)


def run(args: argparse.Namespace) -> int:
    from ..presets.cli import run_conventions

    return run_conventions(args)
