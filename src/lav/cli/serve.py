"""`lav serve`: the interactive visualizer in the browser (`lav.serve.command`)."""

from __future__ import annotations

import argparse

NAME = "serve"


def add_parser(sub) -> None:
    from ..serve.command import add_parser as add_serve_parser

    add_serve_parser(sub)


def run(args: argparse.Namespace) -> int:
    from ..serve.command import run as run_serve

    return run_serve(args)
