"""Where the shipped demo files live inside the package: the model, the adapter, the screenshot."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import LavError
from ..files import read_json

_HERE = Path(__file__).parent
#: The base model: a standard Hugging Face folder (config, safetensors, tokenizer, processor).
BASE = _HERE / "weights" / "base"
#: The LoRA adapter: a standard PEFT folder.
ADAPTER = _HERE / "weights" / "adapter"
#: The bundled screenshot (a held-out synthetic screen) and its answer key.
SCREEN = _HERE / "data" / "screen.png"
SCREEN_INFO = _HERE / "data" / "screen.json"
#: The name that stands for the shipped model (``--model demo``, ``lav.load("demo")``) and for its
#: adapter (``--adapter demo``). A folder of your own called ``demo`` is reached as ``./demo``.
NAME = "demo"


def model_path(name):
    """``"demo"`` -> the shipped base model's folder; any other name or object is returned as it is."""
    return str(BASE) if isinstance(name, str) and name == NAME else name


def adapter_path(name):
    """``"demo"`` -> the shipped LoRA adapter's folder; any other name or object is returned as it is."""
    return str(ADAPTER) if isinstance(name, str) and name == NAME else name


def _info() -> dict:
    return read_json(SCREEN_INFO, "demo answer key", fix="reinstall lav (the file ships with it)")


def instruction() -> str:
    """The instruction that goes with the bundled screenshot."""
    return _info()["instruction"]


def box() -> tuple[int, int, int, int]:
    """The target's box in the bundled screenshot, (x0, y0, x1, y1) pixels, x1/y1 exclusive."""
    return tuple(_info()["box"])


def shapes() -> tuple[tuple[str, str, tuple[int, int, int, int]], ...]:
    """Every shape on the bundled screenshot: (colour, shape, box), the target first.

    The screen is `lav.demo.screens.make_screen` of the seed and task in ``screen.json``; drawing it
    again gives its boxes (the same seed always places the same shapes)."""
    from .screens import make_screen

    info = _info()
    screen = make_screen(int(info["seed"]), str(info["task"]))
    if tuple(screen.box) != box():
        raise LavError(f"{SCREEN_INFO} does not match the screen of its seed; reinstall lav")
    return screen.shapes


def boxes_for(instruction: str) -> list[tuple[int, int, int, int]]:
    """The boxes, on the bundled screenshot, of the shape that ``instruction`` names ("Click the
    yellow triangle"); empty when it names no shape on that screen (or is not of that form)."""
    m = re.fullmatch(r"\s*click\s+(?:on\s+)?the\s+(\w+)\s+(\w+)\s*\.?\s*", instruction, re.IGNORECASE)
    if m is None:
        return []
    colour, shape = m[1].lower(), m[2].lower()
    return [b for c, s, b in shapes() if (c, s) == (colour, shape)]
