"""Watch an adapter learn where to look: `LavCallback` for training, `evolve` across checkpoints.

``from lav.integrations import LavCallback``: a `transformers.TrainerCallback` (imports
transformers). ``lav.integrations.evolve``: the same metrics on every saved checkpoint of a run
(``lav evolve``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["LavCallback", "evolve", "load_probe"]

_LAZY = {
    "LavCallback": "lav.integrations.callback",
    "evolve": "lav.integrations.evolve",
    "load_probe": "lav.integrations.probe",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lav.integrations' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
