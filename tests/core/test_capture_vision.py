"""Vision 'received' attention against a float64 full softmax of each block's own q/k."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lav.capture import capture, vision_received
from lav.geometry import grids_from_thw
from lav.models import inspect_model
from lav.testing import available_families, tiny_model

from ..helpers import image_inputs
from .probe import qk_probe, raster_from_block_major, received_reference, with_lora

# Two images, one non-square each way, in one prompt: cu_seqlens separates them.
GRIDS = [(1, 6, 10), (1, 8, 4)]


def _model_window_index(model, grid_thw):
    """Merge-block window order as the model itself computes it (4.57 method or 5.x function)."""
    vision_tower = next(m for m in model.modules() if hasattr(m, "fullatt_block_indexes"))
    if hasattr(vision_tower, "get_window_index"):
        return vision_tower.get_window_index(grid_thw)[0]
    from transformers.vision_utils import get_vision_window_index

    cfg = vision_tower.config
    return get_vision_window_index(
        grid_thw,
        spatial_merge_size=cfg.spatial_merge_size,
        window_size=cfg.window_size,
        patch_size=cfg.patch_size,
    )[0]


def _reference(model, inputs, parts):
    """Per block: per image (H, t, h, w) float64 reference in raster order, from the probe's q/k."""
    with qk_probe(model, parts.vision_attention) as calls:
        model(**inputs)
    merge = parts.merge
    refs = []
    for block_calls in calls:
        seq = torch.cat([received_reference(q, k, s) for q, k, s in block_calls], dim=1)
        # Qwen2.5-VL permutes patches into windows before block 0 and keeps that order in every
        # block, full-attention ones included (the model un-permutes only the merger's output).
        if getattr(model.config.vision_config, "fullatt_block_indexes", None) is not None:
            win = _model_window_index(model, inputs["image_grid_thw"])
            perm = (win[:, None] * merge * merge + torch.arange(merge * merge)[None]).flatten()
            seq = seq[:, torch.argsort(perm)]
        out, start = [], 0
        for t, h, w in GRIDS:
            out.append(raster_from_block_major(seq[:, start : start + t * h * w], t, h, w, merge).numpy())
            start += t * h * w
        refs.append(out)
    return refs


@pytest.mark.parametrize("lora", [False, True], ids=["bare", "lora"])
@pytest.mark.parametrize("family", available_families())
def test_received_matches_float64_softmax_for_every_block(family, lora):
    model = tiny_model(family)
    if lora:
        model = with_lora(model)
    parts = inspect_model(model)
    inputs = image_inputs(inspect_config(model), GRIDS)
    _drop_unsupported(inputs)
    refs = _reference(model, inputs, parts)
    blocks = list(range(len(parts.vision_attention)))
    with capture(model, vision_blocks=blocks) as rec:
        model(**inputs)
    grids = grids_from_thw(inputs["image_grid_thw"], parts.merge)
    if parts.spec.windowed:
        assert parts.windowed_blocks and parts.full_attention_blocks, "tiny config must have both kinds"
    for block in blocks:
        got = vision_received(rec, block, grids)
        for image, (g, r) in enumerate(zip(got, refs[block], strict=True)):
            assert g.shape == r.shape, (block, image)
            rel = np.abs(g - r) / np.abs(r)
            assert rel.max() <= 1e-4, f"block {block} image {image}: rel. error {rel.max():.2e}"


def inspect_config(model):
    from lav.models import unwrap

    return unwrap(model).config


def _drop_unsupported(inputs):
    import transformers

    if transformers.__version__.startswith("4."):
        inputs.pop("mm_token_type_ids")


@pytest.mark.parametrize("family", available_families())
def test_capture_leaves_logits_bit_identical(family):
    model = tiny_model(family)
    inputs = image_inputs(model.config, GRIDS)
    _drop_unsupported(inputs)
    plain = model(**inputs).logits
    parts = inspect_model(model)
    with capture(
        model,
        vision_blocks=range(len(parts.vision_attention)),
        decoder_layers=range(len(parts.decoder_attention)),
        rows_from=0,
    ):
        captured = model(**inputs).logits
    assert torch.equal(plain, captured)


def test_each_window_receives_exactly_its_own_queries():
    """In a windowed block every query's row sums to one inside its window, so each window of the
    un-permuted map sums to its patch count; a wrong un-permutation mixes windows and breaks this."""
    model = tiny_model("qwen2_5_vl")
    parts = inspect_model(model)
    inputs = image_inputs(model.config, GRIDS)
    _drop_unsupported(inputs)
    with capture(model, vision_blocks=[0]) as rec:
        model(**inputs)
    grids = grids_from_thw(inputs["image_grid_thw"], parts.merge)
    side = parts.window_size // parts.patch  # patches per window side
    for image, (_, h, w) in zip(vision_received(rec, 0, grids), GRIDS, strict=True):
        for head in image[:, 0]:
            for r in range(0, h, side):
                for c in range(0, w, side):
                    win = head[r : r + side, c : c + side]
                    np.testing.assert_allclose(win.sum(), win.size, rtol=1e-5)


def test_varlen_flash_call_is_split_at_cu_seqlens():
    """Flash backends get the whole vision sequence once, with cu_seq_lens_q: each segment is its own image."""
    from lav.capture.recorder import Recording, _vision_received

    parts = inspect_model(tiny_model("qwen3_vl"))
    rec = Recording(parts, (0,), (), None)
    rec.reset()
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, 40, 16, generator=gen)
    k = torch.randn(1, 4, 40, 16, generator=gen)
    _vision_received(rec, 0, q, k, 0.25, {"cu_seq_lens_q": torch.tensor([0, 24, 40], dtype=torch.int32)})
    got = torch.cat(rec.vision[0], dim=1).double()
    expected = torch.cat(
        [received_reference(q[:, :, a:b], k[:, :, a:b], 0.25) for a, b in ((0, 24), (24, 40))], 1
    )
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert [c.shape[1] for c in rec.vision[0]] == [24, 16]
