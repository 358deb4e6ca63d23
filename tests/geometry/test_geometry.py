"""Geometry facts from shared/DESIGN.md, each checked against the real processor or model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from transformers.models.qwen2_vl import image_processing_qwen2_vl as hf_ip

from lav.capture import Recording, vision_received
from lav.geometry import (
    Grid,
    grid_to_sequence,
    grids_from_thw,
    original_to_resized,
    patches_to_image,
    resized_to_original,
    sequence_to_grids,
    smart_resize,
    split_merged_tokens,
    window_permutation,
)
from lav.models import inspect_model
from lav.testing import tiny_model

MEAN = [0.5, 0.5, 0.5]
STD = [0.5, 0.5, 0.5]


def _processor(patch):
    return hf_ip.Qwen2VLImageProcessor(
        patch_size=patch,
        merge_size=2,
        temporal_patch_size=2,
        image_mean=MEAN,
        image_std=STD,
        min_pixels=16 * 16,
        max_pixels=4096 * 4096,
    )


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 5000),
    st.integers(1, 5000),
    st.sampled_from([28, 32]),
    st.sampled_from([(3136, 12845056), (256 * 28 * 28, 1280 * 28 * 28), (65536, 16777216)]),
)
def test_smart_resize_matches_transformers(height, width, factor, limits):
    if max(height, width) / min(height, width) > 200:
        with pytest.raises(ValueError):
            smart_resize(height, width, factor, *limits)
        return
    assert smart_resize(height, width, factor, *limits) == hf_ip.smart_resize(height, width, factor, *limits)


@pytest.mark.parametrize(("patch", "size"), [(16, (160, 96)), (14, (84, 140)), (16, (64, 192))])
def test_pixel_values_rebuild_the_image_pixel_by_pixel(patch, size):
    """An image already at a valid size is not resized: rebuilding it from pixel_values is exact."""
    rng = np.random.default_rng(0)
    width, height = size
    original = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = _processor(patch)(images=Image.fromarray(original), return_tensors="pt")
    grid = grids_from_thw(out["image_grid_thw"], 2)[0]
    assert (grid.h * patch, grid.w * patch) == (height, width)
    rebuilt = patches_to_image(out["pixel_values"], grid, patch, 2, MEAN, STD)
    assert np.abs(rebuilt.astype(int) - original.astype(int)).max() <= 1


def _one_hot_image(rows, cols, patch, hot):
    img = np.zeros((rows * patch, cols * patch, 3), dtype=np.uint8)
    r, c = hot
    img[r * patch : (r + 1) * patch, c * patch : (c + 1) * patch] = 255
    return Image.fromarray(img)


def _planted_recording(parts, seq_values):
    rec = Recording(parts, (0,), (), None)
    rec.reset()
    rec.vision[0] = [torch.as_tensor(seq_values, dtype=torch.float32)[None]]
    return rec


@pytest.mark.parametrize("hot", [(0, 0), (2, 7), (5, 1), (4, 8)])
def test_planted_patch_lands_on_its_row_and_column(hot):
    """The processor's brightest patch (in sequence order) maps back to where it was drawn."""
    parts = inspect_model(tiny_model("qwen3_vl"))
    rows, cols = 6, 10  # non-square
    out = _processor(parts.patch)(images=_one_hot_image(rows, cols, parts.patch, hot), return_tensors="pt")
    grids = grids_from_thw(out["image_grid_thw"], parts.merge)
    assert (grids[0].h, grids[0].w) == (rows, cols)
    brightness = out["pixel_values"].mean(dim=1).numpy()  # (S,) in the model's sequence order
    received = (brightness == brightness.max()).astype(np.float32)
    assert received.sum() == 1
    got = vision_received(_planted_recording(parts, received), 0, grids)[0][0, 0]
    assert np.unravel_index(got.argmax(), got.shape) == hot
    assert got.sum() == 1


@pytest.mark.parametrize("hot", [(0, 0), (3, 9), (5, 2)])
def test_planted_patch_in_a_windowed_block_lands_on_its_row_and_column(hot):
    model = tiny_model("qwen2_5_vl")
    parts = inspect_model(model)
    rows, cols = 6, 10
    out = _processor(parts.patch)(images=_one_hot_image(rows, cols, parts.patch, hot), return_tensors="pt")
    grids = grids_from_thw(out["image_grid_thw"], parts.merge)
    brightness = out["pixel_values"].mean(dim=1).numpy()
    block_major = (brightness == brightness.max()).astype(np.float32)
    # The windowed block sees the patches in the model's own window order.
    from tests.core.test_capture_vision import _model_window_index

    win = _model_window_index(model, out["image_grid_thw"]).numpy()
    perm = (win[:, None] * 4 + np.arange(4)[None]).reshape(-1)
    got = vision_received(_planted_recording(parts, block_major[perm]), 0, grids)[0][0, 0]
    assert parts.is_windowed(0)
    assert np.unravel_index(got.argmax(), got.shape) == hot


@pytest.mark.parametrize("grid_thw", [[(1, 6, 10)], [(1, 8, 4), (1, 10, 6)], [(2, 4, 8)], [(1, 16, 20)]])
def test_window_permutation_matches_the_model(grid_thw):
    model = tiny_model("qwen2_5_vl")
    from tests.core.test_capture_vision import _model_window_index

    win = _model_window_index(model, torch.tensor(grid_thw)).numpy()
    expected = (win[:, None] * 4 + np.arange(4)[None]).reshape(-1)
    vc = model.config.vision_config
    got = window_permutation(grids_from_thw(grid_thw, 2), vc.window_size, vc.patch_size)
    np.testing.assert_array_equal(got, expected)


def test_merged_tokens_are_raster_over_the_merged_grid():
    grids = [Grid(1, 4, 6, 2), Grid(1, 6, 2, 2)]
    values = np.zeros(6 + 3)
    values[4] = 1  # image 0: token 4 = merged row 1, col 1
    values[6 + 2] = 2  # image 1: token 2 = merged row 2, col 0
    a, b = split_merged_tokens(values, grids)
    assert a.shape == (1, 2, 3) and a[0, 1, 1] == 1
    assert b.shape == (1, 3, 1) and b[0, 2, 0] == 2


def test_block_major_index_follows_the_design_formula():
    g = Grid(1, 4, 6, 2)
    idx = g.block_major_index()[0]
    # Row 1, col 3: merge block (0, 1), within-block (1, 1) -> ((0*3 + 1)*4) + 1*2 + 1 = 7.
    assert idx[1, 3] == 7
    assert sorted(idx.reshape(-1).tolist()) == list(range(24))


def test_grid_to_sequence_is_the_inverse_of_sequence_to_grids():
    g = Grid(2, 4, 6, 2)
    seq = np.arange(g.patches, dtype=np.float32)
    (raster,) = sequence_to_grids(seq, [g])
    np.testing.assert_array_equal(grid_to_sequence(raster, g), seq)
    # Torch in, torch out; raster row 1, col 3 of the first frame is sequence index 7.
    mask = torch.zeros(2, 4, 6, dtype=torch.bool)
    mask[0, 1, 3] = True
    assert grid_to_sequence(mask, g).nonzero().flatten().tolist() == [7]


@given(st.floats(0, 4000), st.floats(0, 3000), st.integers(28, 4000), st.integers(28, 3000))
def test_resized_and_original_pixels_round_trip(x, y, w, h):
    resized = (max(28, w // 28 * 28), max(28, h // 28 * 28))
    rx, ry = original_to_resized(x, y, resized, (w, h))
    ox, oy = resized_to_original(rx, ry, resized, (w, h))
    assert ox == pytest.approx(x, abs=1e-6) and oy == pytest.approx(y, abs=1e-6)
