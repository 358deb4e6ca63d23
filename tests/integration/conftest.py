"""Tiny checkpoints of every family (with decoder-attention variants) and one screenshot."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from lav.testing import tiny_checkpoint

from .reference64 import FLOAT64_EXPERTS

#: Non-square, not a multiple of the patch size: several Qwen2.5-VL windows, a grid of 14x20 or so.
SIZE = (300, 200)


@pytest.fixture(scope="session")
def screenshot() -> Image.Image:
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    img[50:90, 200:260] = (230, 30, 30)  # a "button"
    return Image.fromarray(img)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """``checkpoint(family, kv_heads=None)``: folder of a tiny checkpoint, built once per session.

    ``kv_heads`` overrides the decoder's ``num_key_value_heads`` (the tiny configs have 4 query heads).
    """
    root = tmp_path_factory.mktemp("checkpoints")
    built = {}

    def build(family: str, kv_heads: int | None = None):
        key = (family, kv_heads)
        if key not in built:
            text = {} if kv_heads is None else {"num_key_value_heads": kv_heads}
            built[key] = tiny_checkpoint(family, root / f"{family}-kv{kv_heads}", text=text)
        return built[key]

    return build


def load(folder, dtype=None):
    """Model (sdpa, as users run it) and processor from a checkpoint folder."""
    extra = FLOAT64_EXPERTS if dtype == torch.float64 else {}
    model = transformers.AutoModelForImageTextToText.from_pretrained(
        folder, attn_implementation="sdpa", **extra
    )
    if dtype is not None:
        model = model.to(dtype)
    return model.eval(), transformers.AutoProcessor.from_pretrained(folder)
