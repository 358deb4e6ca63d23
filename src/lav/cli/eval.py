"""`lav eval`: a GUI-grounding benchmark, scored (`lav.eval.cli`)."""

from __future__ import annotations

import argparse

NAME = "eval"


def add_parser(sub) -> None:
    from ..eval.cli import add_eval_parser

    add_eval_parser(sub)


def run(args: argparse.Namespace) -> int:
    from ..eval.cli import run_eval

    return run_eval(args)
