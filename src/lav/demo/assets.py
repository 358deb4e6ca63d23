"""Where the shipped demo files live inside the package: the model, the adapter, the screenshot."""

from __future__ import annotations

from pathlib import Path

from ..files import read_json

_HERE = Path(__file__).parent
#: The base model: a standard Hugging Face folder (config, safetensors, tokenizer, processor).
BASE = _HERE / "weights" / "base"
#: The LoRA adapter: a standard PEFT folder.
ADAPTER = _HERE / "weights" / "adapter"
#: The bundled screenshot (a held-out synthetic screen) and its answer key.
SCREEN = _HERE / "data" / "screen.png"
SCREEN_INFO = _HERE / "data" / "screen.json"


def _info() -> dict:
    return read_json(SCREEN_INFO, "demo answer key", fix="reinstall lav (the file ships with it)")


def instruction() -> str:
    """The instruction that goes with the bundled screenshot."""
    return _info()["instruction"]


def box() -> tuple[int, int, int, int]:
    """The target's box in the bundled screenshot, (x0, y0, x1, y1) pixels, x1/y1 exclusive."""
    return tuple(_info()["box"])
