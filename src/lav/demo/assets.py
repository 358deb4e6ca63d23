"""Where the shipped demo files live inside the package: the model, the adapter, the screenshot."""

from __future__ import annotations

import json
from pathlib import Path

_HERE = Path(__file__).parent
#: The base model: a standard Hugging Face folder (config, safetensors, tokenizer, processor).
BASE = _HERE / "weights" / "base"
#: The LoRA adapter: a standard PEFT folder.
ADAPTER = _HERE / "weights" / "adapter"
#: The bundled screenshot (a held-out synthetic screen) and its answer key.
SCREEN = _HERE / "data" / "screen.png"
SCREEN_INFO = _HERE / "data" / "screen.json"


def _info() -> dict:
    return json.loads(SCREEN_INFO.read_text(encoding="utf-8"))


def instruction() -> str:
    """The instruction that goes with the bundled screenshot."""
    return _info()["instruction"]


def box() -> tuple[int, int, int, int]:
    """The target's box in the bundled screenshot, (x0, y0, x1, y1) pixels, x1/y1 exclusive."""
    return tuple(_info()["box"])
