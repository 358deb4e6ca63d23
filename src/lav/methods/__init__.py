"""Map methods on one template (`MapMethod`): edge, focus and indexer selection; more register here.

`register` adds a method that `Visualizer.analyze` then runs by default where it `applies` to the
model; its maps appear in ``result.json``, ``maps.npz``, the report and the notebook view without any change elsewhere.
"""

from __future__ import annotations

from .base import (
    AnswerRows,
    Item,
    MapMethod,
    Needs,
    Selection,
    chosen,
    minmax,
    register,
    registered,
    unregister,
)
from .edge import Edge
from .focus import Focus, answer_rows
from .indexer import IndexerSelection

register(Edge())
register(Focus())
# Runs by default only on models with indexed-attention layers (Qwen4-Exp): `MapMethod.applies`.
register(IndexerSelection())

__all__ = [
    "AnswerRows",
    "Edge",
    "Focus",
    "IndexerSelection",
    "Item",
    "MapMethod",
    "Needs",
    "Selection",
    "answer_rows",
    "chosen",
    "minmax",
    "register",
    "registered",
    "unregister",
]
