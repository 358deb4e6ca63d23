"""The benchmark formats lav reads: one module each, holding its reader and its `Format` record.

A new format is one new module (a `Format` named ``FORMAT``: name, detection, reader, official
table) and one line in `REGISTRY`, whose order is the order formats are offered in (``--format``,
error messages); detection follows each record's ``rank``.
"""

from __future__ import annotations

from . import hf, jsonl, mmbench_gui, osworld_g, screenspot, screenspot_pro, ui_vision, venusbench_gd
from .base import Format, Parsed, ReadOptions, Spec

REGISTRY: tuple[Format, ...] = (
    screenspot.FORMAT,
    screenspot_pro.FORMAT,
    osworld_g.FORMAT,
    ui_vision.FORMAT,
    mmbench_gui.FORMAT,
    venusbench_gd.FORMAT,
    jsonl.FORMAT,
    hf.FORMAT,
)

__all__ = ["REGISTRY", "Format", "ReadOptions", "Parsed", "Spec"]
