"""`lav` command line: a thin shell over the library (`lav.load`, `Visualizer.analyze`, `Result.save`).

`main` parses and runs a command and turns every ending into an exit status (signals, exit codes);
`options` holds what several commands share (model and analysis options, ``--maps``); `commands`
lists the commands, one module each (`run`, `demo`, `serve`, `eval`, `demo_data`, `evolve`, `plan`,
`presets`, `conventions`). Nothing a command uses is imported back from here.
"""

from __future__ import annotations

from .commands import COMMANDS, build_parser
from .main import EXIT_BAD_INPUT, Terminated, main
from .main import entry as _entry
from .options import (
    ADAPTER_HELP,
    DTYPES,
    MAPS_HELP,
    MODEL_HELP,
    map_names,
    pixel_range,
    placement_options,
    positive_int,
)


def entry() -> None:
    """The ``lav`` program (pyproject's ``[project.scripts]``): `lav.cli.main.entry` running this
    package's `main`, looked up when called."""
    _entry(main)


__all__ = [
    "ADAPTER_HELP",
    "COMMANDS",
    "DTYPES",
    "EXIT_BAD_INPUT",
    "MAPS_HELP",
    "MODEL_HELP",
    "Terminated",
    "build_parser",
    "entry",
    "main",
    "map_names",
    "pixel_range",
    "placement_options",
    "positive_int",
]
