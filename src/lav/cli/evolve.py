"""`lav evolve`: the probe-set metrics and maps of every saved checkpoint (`lav.integrations.cli`)."""

from __future__ import annotations

import argparse

NAME = "evolve"


def add_parser(sub) -> None:
    from ..integrations.cli import add_parser as add_evolve_parser

    add_evolve_parser(sub)


def run(args: argparse.Namespace) -> int:
    from ..integrations.cli import run as run_evolve

    return run_evolve(args)
