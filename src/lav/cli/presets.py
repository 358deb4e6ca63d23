"""`lav presets`: the models lav knows how to run, or one preset in full (`lav.presets.cli`)."""

from __future__ import annotations

import argparse

NAME = "presets"


def add_parser(sub) -> None:
    from ..presets.cli import add_presets_parser

    add_presets_parser(sub)


def run(args: argparse.Namespace) -> int:
    from ..presets.cli import run_presets

    return run_presets(args)
