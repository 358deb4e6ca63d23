"""LoRA Attention Visualizer: where a Qwen-VL model looks when it grounds a GUI instruction.

import lav
viz = lav.load("Qwen/Qwen3-VL-8B-Instruct", adapter="./checkpoint-1200")
res = viz.analyze("screen.png", "Click the Save button", compare_base=True)
res.click, res.edge, res.focus
res.save("out/")
"""

from __future__ import annotations

from .analysis import Visualizer
from .coords import Click
from .errors import AdapterError, CaptureError, ImageError, InputError, LavError, UnsupportedModelError
from .load import load
from .models import SUPPORTED_MODEL_TYPES, inspect_model
from .result import Result

__version__ = "0.1.0"

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "AdapterError",
    "CaptureError",
    "Click",
    "ImageError",
    "InputError",
    "LavError",
    "Result",
    "UnsupportedModelError",
    "Visualizer",
    "__version__",
    "inspect_model",
    "load",
]
