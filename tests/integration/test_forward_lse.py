"""The recorded vision blocks' forward with the fused op that also returns the log-sum-exp.

Under no_grad (as in `generate` and `analyze`) a recorded sdpa vision call runs the fused kernel
itself, keeping each row's log-sum-exp for the edge map; its output must be the backend's bit for
bit, and where the runtime check says it is not, the backend runs and the edge map computes its
own log-sum-exp (logged).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import transformers

from lav.capture import capture, colsums
from lav.capture.compat import ALL_ATTENTION_FUNCTIONS
from lav.models import inspect_model
from lav.testing import available_families, tiny_model

from ..core.probe import qk_probe, received_reference
from ..helpers import image_inputs

GRIDS = [(1, 6, 10), (1, 8, 4)]
FORWARD_LSE = "(forward's lse)"


@pytest.fixture(autouse=True)
def fresh_verdicts(monkeypatch):
    # Each test sees the first-call check (and leaves no verdict behind for the others).
    monkeypatch.setattr(colsums, "_VERDICTS", {})


def _inputs(model):
    inputs = image_inputs(model.config, GRIDS)
    if transformers.__version__.startswith("4."):
        inputs.pop("mm_token_type_ids")
    return inputs


def _all_blocks(model):
    parts = inspect_model(model)
    return dict(
        vision_blocks=range(len(parts.vision_attention)),
        decoder_layers=range(len(parts.decoder_attention)),
        rows_from=0,
    )


class _Vision(torch.nn.Module):
    # What sdpa_attention_forward reads from a vision attention module.
    num_key_value_groups = 1
    is_causal = False


def _vision_call(seq: int, heads: int = 4, dim: int = 72, dtype=torch.float32, device="cpu"):
    gen = torch.Generator().manual_seed(seq)
    # (S, H, D) as the model's qkv projection gives them, then transposed: non-contiguous views.
    return tuple(
        torch.randn(seq, heads, dim, generator=gen).to(device, dtype).transpose(0, 1)[None] for _ in range(3)
    )


def _backend(scale):
    sdpa = ALL_ATTENTION_FUNCTIONS["sdpa"]
    return lambda q, k, v: sdpa(
        _Vision(), q, k, v, attention_mask=None, scaling=scale, dropout=0.0, is_causal=False
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("seq", [1, 37, 700])
def test_fused_forward_is_the_backends_output_bit_for_bit(seq, dtype):
    # 700 > CPU_CHECK_LEN: the first call is checked on a slice, then run by the fused op alone.
    scale = 72**-0.5
    for call in range(3):  # the first call checks, later ones run only the fused op
        q, k, v = _vision_call(seq + call, dtype=dtype)
        expected = _backend(scale)(q, k, v)[0]
        (out, extra), lse = colsums.attention_with_lse(q, k, v, scale, _backend(scale))
        assert extra is None
        assert out.dtype == expected.dtype and out.stride() == expected.stride()
        assert torch.equal(out, expected)
        assert lse is not None, "torch's CPU flash op should reproduce sdpa on this torch"
        ref = torch.logsumexp(q[0].double() @ k[0].double().transpose(-1, -2) * scale, dim=-1)
        assert (lse[0].double() - ref).abs().max() < 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_forward_is_the_backends_output_or_the_backend_itself(dtype):
    # sdpa picks flash, efficient or cuDNN by dtype and hardware; whichever op is kept must match
    # it bit for bit, and with none kept the backend's own output comes back.
    scale = 72**-0.5
    for seq in (1000, 1000, 4100):
        q, k, v = _vision_call(seq, heads=16, dtype=dtype, device="cuda")
        expected = _backend(scale)(q, k, v)[0]
        (out, _), lse = colsums.attention_with_lse(q, k, v, scale, _backend(scale))
        assert torch.equal(out, expected)
        if lse is not None:
            ref = torch.logsumexp(q[0].double() @ k[0].double().transpose(-1, -2) * scale, dim=-1)
            assert (lse[0].double() - ref).abs().max() < 1e-3
            values, used = colsums.received(q[0], k[0], scale, lse=lse[0])
            exact = colsums.received_chunked(q[0], k[0], scale, dtype=torch.float64)
            assert "forward's lse" in used and ((values.double() - exact).abs() / exact).max() < 1e-4


@pytest.mark.parametrize("family", available_families())
def test_logits_bit_identical_with_capture_under_no_grad(family):
    model = tiny_model(family)
    inputs = _inputs(model)
    with torch.no_grad():
        plain = model(**inputs).logits
        with capture(model, **_all_blocks(model)) as rec:
            first = model(**inputs).logits
            second = model(**inputs).logits
    assert torch.equal(plain, first) and torch.equal(plain, second)
    assert any(FORWARD_LSE in m for m in rec.methods), rec.methods


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_received_with_forward_lse_matches_float64_softmax(family):
    model = tiny_model(family)
    parts = inspect_model(model)
    inputs = _inputs(model)
    full = [b for b in range(len(parts.vision_attention)) if not parts.is_windowed(b)]
    with torch.no_grad(), qk_probe(model, parts.vision_attention) as calls:
        model(**inputs)
    with torch.no_grad(), capture(model, vision_blocks=full) as rec:
        model(**inputs)
    assert rec.methods and all(FORWARD_LSE in m for m in rec.methods), rec.methods
    for block in full:
        # Both in the block's own input order (Qwen2.5-VL's window order; the views undo it).
        ref = torch.cat([received_reference(q, k, s) for q, k, s in calls[block]], dim=1).numpy()
        got = torch.cat(rec.vision[block], dim=1).double().numpy()
        assert got.shape == ref.shape
        assert (np.abs(got - ref) / np.abs(ref)).max() <= 1e-4


def test_a_failed_check_keeps_the_backend_and_is_logged(monkeypatch, caplog):
    def wrong(q, k, v, scale):
        out, lse = colsums._flash_cpu(q, k, v, scale)
        return out + 1e-7, lse  # one ulp-scale difference is enough to refuse it

    monkeypatch.setitem(colsums._WITH_LSE, "cpu", (wrong,))
    model = tiny_model("qwen3_vl")
    inputs = _inputs(model)
    with torch.no_grad():
        plain = model(**inputs).logits
        with (
            caplog.at_level(logging.WARNING, logger="lav.capture.colsums"),
            capture(model, **_all_blocks(model)) as rec,
        ):
            first = model(**inputs).logits
            second = model(**inputs).logits
    assert torch.equal(plain, first) and torch.equal(plain, second)
    assert rec.methods and not any(FORWARD_LSE in m for m in rec.methods), rec.methods
    assert "output differs from the backend's" in caplog.text
    assert list(colsums._VERDICTS.values()) == [None]


def test_a_call_that_needs_gradients_runs_the_backend(monkeypatch):
    model = tiny_model("qwen3_vl")
    inputs = _inputs(model)
    plain = model(**inputs).logits
    with capture(model, **_all_blocks(model)) as rec:
        captured = model(**inputs).logits
    assert torch.equal(plain, captured)
    assert not colsums._VERDICTS and not any(FORWARD_LSE in m for m in rec.methods)
