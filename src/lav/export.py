"""Saving a `Result` as a folder: the record (result.json, maps.npz, image.png) and its pictures.

The folder is written by `lav.outdir.write_output_folder`: complete or not at all, and never over
files lav did not write.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import report
from .outdir import write_output_folder
from .result import Result


def save(res: Result, directory: str | os.PathLike) -> Path:
    """Write result.json, maps.npz, image.png, overlay.png and report.html (and the base views).

    `Result.load` reads the folder back; the pictures can be drawn again from the loaded result.
    """

    def write(folder: Path) -> None:
        res.write_record(folder)
        report.write_pictures(res, folder)

    return write_output_folder(directory, write)
