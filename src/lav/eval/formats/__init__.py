"""The benchmark formats lav reads: one module each, holding its reader and its `Format` record.

A new format is one new module (a `Format` named ``FORMAT``: name, detection, reader, official
table) and one line in `ENTRIES`, whose order is the order formats are offered in (``--format``,
error messages); detection follows each record's ``rank``.
"""

from __future__ import annotations

from ...registries import load
from .base import Format, Parsed, ReadOptions, Spec

#: One format a line, ``"module:FORMAT"`` of this package (`lav.registries`), in the order offered.
ENTRIES = (
    "screenspot:FORMAT",
    "screenspot_pro:FORMAT",
    "osworld_g:FORMAT",
    "ui_vision:FORMAT",
    "mmbench_gui:FORMAT",
    "venusbench_gd:FORMAT",
    "jsonl:FORMAT",
    "hf:FORMAT",
)
REGISTRY: tuple[Format, ...] = load("lav.eval.formats", ENTRIES)

__all__ = ["REGISTRY", "Format", "ReadOptions", "Parsed", "Spec"]
