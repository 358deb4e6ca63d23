"""Maps against the float64 reference along penzai's axes: MHA, GQA and MQA decoders; a float64 model.

The tiny decoders have 4 query heads; ``num_key_value_heads`` 4, 2 and 1 give multi-head, grouped
and single-KV-head attention (the recorder must repeat each KV head over its query group exactly as
the model does). Families: Qwen2.5-VL (windowed vision blocks, 1-D MRoPE sections), Qwen3-VL
(interleaved MRoPE, DeepStack) and Qwen3.5 (linear-attention layers between the full ones).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lav
from lav.testing import available_families

from .conftest import load
from .reference64 import reference_maps

INSTRUCTION = "Click the red button"
RESPONSE = "(107, 243)"
HEADS = 4
KV_HEADS = [pytest.param(4, id="mha"), pytest.param(2, id="gqa"), pytest.param(1, id="mqa")]
FAMILIES = [f for f in ("qwen2_5_vl", "qwen3_vl", "qwen3_5") if f in available_families()]
MAPS = ("edge", "focus", "focus_x", "focus_y")
#: A float32 model against float64: the tiny models' maps are nearly flat before min-max (received
#: attention spans ~1 +- 0.006), which magnifies float32 rounding ~100x.
FLOAT32_ATOL = 1e-4
#: A float64 model: the maps are stored as float32 (the Result contract), so the float64 reference
#: can be met only up to that rounding; every step before it must be exact to ~1e-10.
FLOAT64_ATOL = 2.0**-24 + 1e-10


def _analyze(model, processor, screenshot):
    return lav.Visualizer(model, processor).analyze(screenshot, INSTRUCTION, response=RESPONSE)


@pytest.mark.parametrize("kv_heads", KV_HEADS)
@pytest.mark.parametrize("family", FAMILIES)
def test_maps_equal_float64_reference_for_each_kv_head_layout(family, kv_heads, checkpoint, screenshot):
    folder = checkpoint(family, kv_heads)
    model, processor = load(folder)
    text = model.config.text_config
    assert (text.num_attention_heads, text.num_key_value_heads) == (HEADS, kv_heads)
    res = _analyze(model, processor, screenshot)
    ref = reference_maps(folder, processor, screenshot, INSTRUCTION, RESPONSE)
    for name in MAPS:
        np.testing.assert_allclose(getattr(res, name), ref[name], atol=FLOAT32_ATOL, rtol=0, err_msg=name)


@pytest.mark.parametrize("family", FAMILIES)
def test_float64_model_maps_equal_float64_reference_to_storage_precision(family, checkpoint, screenshot):
    folder = checkpoint(family)
    model, processor = load(folder, dtype=torch.float64)
    res = _analyze(model, processor, screenshot)
    ref = reference_maps(folder, processor, screenshot, INSTRUCTION, RESPONSE)
    errors = {name: float(np.abs(getattr(res, name) - ref[name]).max()) for name in MAPS}
    assert max(errors.values()) <= FLOAT64_ATOL, f"max |lav - float64 reference| per map: {errors}"
