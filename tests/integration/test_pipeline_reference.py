"""The maps `Visualizer.analyze` returns, for every family, against an independent float64 reference.

The whole library path (processor, prompt, capture on sdpa, geometry, normalisation) on a tiny model
of each family the installed transformers has, with a forced answer so that the digits are known.
The reference (tests/integration/reference64.py) runs the same checkpoint in float64 with eager
attention and shares no code with lav.
"""

from __future__ import annotations

import numpy as np
import pytest

import lav
from lav.testing import available_families

from .conftest import load
from .reference64 import reference_maps

INSTRUCTION = "Click the red button"
RESPONSE = "(107, 243)"
#: float32 model and capture against float64: min-max maps agree to float32 accumulation error.
ATOL = 1e-4


@pytest.mark.parametrize("family", available_families())
def test_analyze_maps_equal_float64_reference(family, checkpoint, screenshot):
    folder = checkpoint(family)
    model, processor = load(folder)
    res = lav.Visualizer(model, processor).analyze(screenshot, INSTRUCTION, response=RESPONSE)
    ref = reference_maps(folder, processor, screenshot, INSTRUCTION, RESPONSE)

    _, h, w = ref["grid"]  # image_grid_thw of the processor's own inputs
    assert (res.merge, res.response) == (2, RESPONSE)
    assert res.edge.shape == (h, w) and res.focus.shape == (h // 2, w // 2)
    for name in ("edge", "focus", "focus_x", "focus_y"):
        got = getattr(res, name)
        assert got.min() >= 0 and got.max() <= 1, name
        np.testing.assert_allclose(got, ref[name], atol=ATOL, rtol=0, err_msg=f"{family} {name}")
    # Not a degenerate comparison: the reference maps have structure.
    assert ref["edge"].std() > 0.05 and ref["focus"].std() > 0.05
