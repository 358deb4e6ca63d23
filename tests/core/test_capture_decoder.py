"""Decoder attention rows against eager `output_attentions`, in one forward and during generate."""

from __future__ import annotations

import pytest
import torch
import transformers

from lav.capture import capture, decoder_rows
from lav.models import inspect_model
from lav.testing import PAD_TOKEN_ID, available_families, tiny_model

from ..helpers import image_inputs
from .probe import with_lora

GRIDS = [(1, 4, 6)]


def _inputs(model):
    inputs = image_inputs(model.config, GRIDS)
    if transformers.__version__.startswith("4."):
        inputs.pop("mm_token_type_ids")
    return inputs


@pytest.mark.parametrize("some", [False, True], ids=["every-row", "rows_at"])
@pytest.mark.parametrize("backend", ["eager", "sdpa"])
@pytest.mark.parametrize("family", available_families())
def test_rows_equal_eager_output_attentions_in_one_forward(family, backend, some):
    """Every row from ``rows_from`` on, or (``rows_at``, as a replayed batch records only the rows its
    maps read) only the listed positions within that range."""
    eager = tiny_model(family, attn_implementation="eager")
    inputs = _inputs(eager)
    reference = eager(**inputs, output_attentions=True).attentions
    model = tiny_model(family, attn_implementation=backend)
    parts = inspect_model(model)
    n_layers = len(parts.decoder_attention)
    assert len(reference) == n_layers
    length = inputs["input_ids"].shape[1]
    at = [length - 6, length - 3, length - 2] if some else None
    with capture(model, decoder_layers=range(n_layers), rows_from=length - 5, rows_at=at) as rec:
        model(**inputs)
    tol = 1e-6 if backend == "eager" else 1e-4
    for layer in range(n_layers):
        positions, rows = decoder_rows(rec, layer)
        # rows_at within rows_from's range only
        assert positions == ([length - 3, length - 2] if some else list(range(length - 5, length)))
        expected = reference[layer][:, :, positions].permute(2, 0, 1, 3)  # (R, B, H, K)
        torch.testing.assert_close(rows, expected.float(), atol=tol, rtol=0)


@pytest.mark.parametrize("lora", [False, True], ids=["bare", "lora"])
@pytest.mark.parametrize("family", available_families())
def test_rows_equal_eager_attentions_step_by_step_during_generate(family, lora):
    model = tiny_model(family, attn_implementation="eager")
    if lora:
        model = with_lora(model)
    inputs = _inputs(model)
    length = inputs["input_ids"].shape[1]
    gen_kwargs = dict(max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=PAD_TOKEN_ID)
    ref = model.generate(**inputs, output_attentions=True, return_dict_in_generate=True, **gen_kwargs)
    parts = inspect_model(model)
    n_layers = len(parts.decoder_attention)
    with capture(model, decoder_layers=range(n_layers), rows_from=length - 1) as rec:
        out = model.generate(**inputs, **gen_kwargs)
    assert torch.equal(out, ref.sequences)
    steps = ref.attentions
    for layer in range(n_layers):
        positions, rows = decoder_rows(rec, layer)
        # One row per generated token: the prompt's last query, then each decode step's query.
        assert positions == list(range(length - 1, length - 1 + len(steps)))
        for step, attn in enumerate(steps):
            expected = attn[layer][:, :, -1].float()  # (B, H, K) of the query that made token `step`
            got = rows[step, :, :, : expected.shape[-1]]
            torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
            assert rows[step, :, :, expected.shape[-1] :].abs().sum() == 0


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_left_padding_is_masked_like_the_model_masks_it(backend):
    """Without the mask function registered beside the recorder, left padding is silently ignored."""
    model = tiny_model("qwen3_vl", attn_implementation=backend)
    a = image_inputs(model.config, GRIDS, text_before=3, text_after=6, seed=1)
    b = image_inputs(model.config, GRIDS, text_before=3, text_after=2, seed=2)
    pad = a["input_ids"].shape[1] - b["input_ids"].shape[1]
    ids = torch.cat([a["input_ids"], torch.cat([torch.full((1, pad), PAD_TOKEN_ID), b["input_ids"]], 1)])
    mask = torch.cat(
        [a["attention_mask"], torch.cat([torch.zeros(1, pad, dtype=torch.long), b["attention_mask"]], 1)]
    )
    inputs = {
        "input_ids": ids,
        "attention_mask": mask,
        "pixel_values": torch.cat([a["pixel_values"], b["pixel_values"]]),
        "image_grid_thw": torch.cat([a["image_grid_thw"], b["image_grid_thw"]]),
    }
    if not transformers.__version__.startswith("4."):
        inputs["mm_token_type_ids"] = (ids == model.config.image_token_id).long()
    plain = model(**inputs).logits
    length = ids.shape[1]
    with capture(model, decoder_layers=[0, 1, 2], rows_from=length - 2) as rec:
        captured = model(**inputs).logits
    assert torch.equal(plain, captured)
    eager = tiny_model("qwen3_vl", attn_implementation="eager")
    reference = eager(**inputs, output_attentions=True).attentions
    for layer in range(3):
        positions, rows = decoder_rows(rec, layer)
        expected = reference[layer][:, :, positions].permute(2, 0, 1, 3)
        torch.testing.assert_close(rows, expected, atol=1e-4, rtol=0)
        # The padded sequence gives its padding no attention at all.
        assert rows[:, 1, :, :pad].abs().max() == 0


def test_flash_style_2d_padding_mask_gives_the_same_rows_as_the_4d_mask():
    """Flash backends pass the 2-D padding mask; causality is then the recorder's to apply."""
    from lav.capture import row_mask

    like = torch.zeros(2, 1, 3, 6)
    pad = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    local, start, k_len = [3, 4, 5], 0, 6
    causal = torch.arange(k_len)[None, :] <= torch.tensor(local)[:, None]
    four_d_full = torch.zeros(2, 1, 6, 6, dtype=torch.bool)  # what sdpa_mask gives: padding & causal
    four_d_full[:, :, local] = pad[:, None, None, :].bool() & causal[None, None]
    a = row_mask(pad, local, start, k_len, like)[0]
    b = row_mask(four_d_full, local, start, k_len, like)[0]
    torch.testing.assert_close(a, b)
    assert (a[1, 0, :, :2] < -1e30).all() and (a[0, 0, 0, 4:] < -1e30).all() and (a[0, 0, 2] == 0).all()
