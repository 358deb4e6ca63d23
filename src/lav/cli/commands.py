"""The `lav` sub-commands, in the order ``lav --help`` lists them.

A command is one module of this package with ``NAME``, ``add_parser(subparsers)`` and
``run(args) -> int``; adding one is that module plus its line in `ENTRIES`. A command module
imports nothing heavy at import time (torch loads after the signal handlers are in place).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from types import ModuleType

from ..registries import load
from .options import Parser

#: One command a line, a module of this package (`lav.registries`), in the order listed.
ENTRIES = (
    "run",
    "demo",
    "serve",
    "eval",
    "demo_data",
    "evolve",
    "plan",
    "presets",
    "conventions",
)
COMMANDS: tuple[ModuleType, ...] = load("lav.cli", ENTRIES)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="lav", description="Where a Qwen-VL model looks when it clicks, with and without its LoRA."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def runner(name: str) -> Callable[[argparse.Namespace], int]:
    """The ``run`` of the command called ``name`` (as argparse gave it)."""
    return next(command.run for command in COMMANDS if name == command.NAME)
