"""Map methods on one template (`MapMethod`), one module each, registered by their line in `ENTRIES`.

`register` adds a method that `Visualizer.analyze` then runs by default (unless its ``default`` is
False: then only when named in ``maps``) where it `applies` to the model; its maps appear in ``result.json``, ``maps.npz``, the report and the notebook view without any change elsewhere.
"""

from __future__ import annotations

from ..registries import load
from .base import (
    AnswerRows,
    Item,
    MapMethod,
    Needs,
    Runner,
    Selection,
    chosen,
    merged_grid,
    minmax,
    needing,
    register,
    registered,
    unoffered,
    unregister,
    with_defaults,
    with_required,
)
from .edge import Edge
from .focus import Focus, answer_rows
from .grad import GradFocus
from .heads import SelectedHeadsFocus, heads_from_ranking, resolve_heads
from .indexer import IndexerSelection
from .relative import GENERIC_INSTRUCTION, RelativeFocus
from .rollout import EdgeRollout
from .sink import SinkMaskedFocus

#: The registered methods, one a line, in the order they run and are listed (``--maps`` help):
#: ``"module:Class"`` of this package, registered as ``Class()`` (`lav.registries`).
ENTRIES = (
    "edge:Edge",
    "focus:Focus",
    # Runs by default only on models with indexed-attention layers (Qwen4-Exp): `MapMethod.applies`.
    "indexer:IndexerSelection",
    # Opt-in (``maps=[...]`` / ``lav run --maps``): the default set stays as cheap as edge + focus.
    "sink:SinkMaskedFocus",
    "heads:SelectedHeadsFocus",
    # Another generic instruction: unregister("focus_relative"); register(RelativeFocus("...")).
    "relative:RelativeFocus",
    "grad:GradFocus",
    "rollout:EdgeRollout",
)
for _class in load("lav.methods", ENTRIES):
    register(_class())

# lav's public names: a new method need not be one (its line in ENTRIES is what registers it).
__all__ = [
    "GENERIC_INSTRUCTION",
    "AnswerRows",
    "Edge",
    "EdgeRollout",
    "Focus",
    "GradFocus",
    "IndexerSelection",
    "Item",
    "MapMethod",
    "Needs",
    "RelativeFocus",
    "Runner",
    "Selection",
    "SelectedHeadsFocus",
    "SinkMaskedFocus",
    "answer_rows",
    "chosen",
    "with_defaults",
    "with_required",
    "heads_from_ranking",
    "merged_grid",
    "minmax",
    "needing",
    "register",
    "registered",
    "resolve_heads",
    "unoffered",
    "unregister",
]
