"""LoRA Attention Visualizer: where a Qwen-VL model looks when it grounds a GUI instruction.

import lav
viz = lav.load("Qwen/Qwen3-VL-8B-Instruct", adapter="./checkpoint-1200")
res = viz.analyze("screen.png", "Click the Save button", compare_base=True)
res.click, res.edge, res.focus
res.save("out/")
lav.Result.load("out/")          # no torch needed to read a saved result

``import lav`` imports neither torch nor transformers: the names that need them load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .coords import AnswerRules, Click
from .errors import (
    AdapterError,
    AdapterWarning,
    BatchError,
    CaptureError,
    ImageError,
    InputError,
    LavError,
    LavWarning,
    UnsupportedModelError,
)

__version__ = "0.2.0"

# name -> module that defines it; imported when first asked for (PEP 562).
_LAZY = {
    # numpy and PIL too: the `lav` command installs its signal handlers before they load.
    "Map": "lav.result",
    "Result": "lav.result",
    "Visualizer": "lav.analysis",
    "load": "lav.loading",
    "SUPPORTED_MODEL_TYPES": "lav.models",
    "inspect_model": "lav.models",
    "MapMethod": "lav.methods",
    "register_method": "lav.methods",
    "evaluate": "lav.eval.engine",
    "AnalysisOptions": "lav.options",
}
_RENAMED = {"register_method": "register"}

if TYPE_CHECKING:
    from .analysis import Visualizer
    from .loading import load
    from .methods import MapMethod
    from .methods import register as register_method
    from .models import SUPPORTED_MODEL_TYPES, inspect_model
    from .options import AnalysisOptions
    from .result import Map, Result


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lav' has no attribute {name!r}")
    from .quiet import quiet_imports

    with quiet_imports():
        value = getattr(import_module(module), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "AdapterError",
    "BatchError",
    "AdapterWarning",
    "AnalysisOptions",
    "AnswerRules",
    "CaptureError",
    "Click",
    "ImageError",
    "InputError",
    "LavError",
    "LavWarning",
    "Map",
    "MapMethod",
    "Result",
    "UnsupportedModelError",
    "Visualizer",
    "__version__",
    "inspect_model",
    "load",
    "register_method",
]
