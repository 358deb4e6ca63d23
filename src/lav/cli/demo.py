"""`lav demo`: the shipped demo model and its adapter on a shipped screenshot (`lav.demo.cli`)."""

from __future__ import annotations

import argparse

NAME = "demo"


def add_parser(sub) -> None:
    from ..demo.cli import add_parser as add_demo_parser

    add_demo_parser(sub)


def run(args: argparse.Namespace) -> int:
    from ..demo.cli import run as run_demo

    return run_demo(args)
