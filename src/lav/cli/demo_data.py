"""`lav demo-data`: a small synthetic benchmark from the demo screens (`lav.eval.cli`)."""

from __future__ import annotations

import argparse

NAME = "demo-data"


def add_parser(sub) -> None:
    from ..eval.cli import add_demo_data_parser

    add_demo_data_parser(sub)


def run(args: argparse.Namespace) -> int:
    from ..eval.cli import run_demo_data

    return run_demo_data(args)
