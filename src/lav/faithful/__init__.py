"""Does the map explain the click? Causal checks of every map (``lav run --faithfulness``, ``--zoom``).

- `faithfulness`: deletion / insertion curves of each map against random orders and its inverse;
- `zoom`: crop around each map's peak, ask again, map the click back (the attention-guided zoom test);
- `attach`: both, as `CheckOptions` asks, into a `lav.Result` (and its base run);
- `summarize`: the ``faithfulness`` and ``zoom`` blocks of an evaluation's summary (torch-free).

Importing this package imports neither torch nor transformers; the names that run a model load on
first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .options import CheckOptions

_LAZY = {
    "faithfulness": "lav.faithful.measure",
    "zoom": "lav.faithful.measure",
    "attach": "lav.faithful.measure",
    "summarize": "lav.faithful.summary",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lav.faithful' has no attribute {name!r}")


__all__ = ["CheckOptions", "attach", "faithfulness", "summarize", "zoom"]
