"""Map methods on one template (`MapMethod`): edge and focus first; more register themselves here.

`register` adds a method that `Visualizer.analyze` then runs by default; its maps appear in
``result.json``, ``maps.npz``, the report and the notebook view without any change elsewhere.
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

register(Edge())
register(Focus())

__all__ = [
    "AnswerRows",
    "Edge",
    "Focus",
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
