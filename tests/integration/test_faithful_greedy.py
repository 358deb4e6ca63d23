"""`lav.faithful.decode.GreedyPool`: greedy decoding continued on a forced forward's own cache
equals a fresh `generate` from the prompt, on tiny models of every family.

A batch of differently masked copies of one screenshot. Forced answers: one the random model would
not write (its greedy answers differ from it at the first token), and the model's own greedy answer
with a token changed further in (decoding then goes on from there, the cache cut back to that
position). The continued answers must equal `generate`'s greedy answers token for token (up to the
end token, at most the given length). Layers that keep a recurrent state (the linear attention of
Qwen3.5 and Qwen4-Exp) cannot be cut back: None, and the caller generates afresh.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import lav
from lav.faithful import decode
from lav.faithful.decode import GreedyPool, poolable, row_bytes
from lav.scoring import cache_of
from lav.stages import Request, pad_id, prepare
from lav.testing import available_families

pytestmark = pytest.mark.slow

NEW = 10


def _answer(ids: torch.Tensor, ends: set[int]) -> list[int]:
    out = []
    for t in ids.tolist():
        if t in ends:
            break
        out.append(t)
    return out


def _forced(inputs: dict[str, torch.Tensor], answers: torch.Tensor) -> dict[str, torch.Tensor]:
    """``inputs`` (a prompt batch) with ``answers`` (batch, tokens) appended as a forced answer."""
    out = dict(inputs)
    out["input_ids"] = torch.cat([inputs["input_ids"], answers], 1)
    for key, fill in (("attention_mask", 1), ("mm_token_type_ids", 0)):
        if key in inputs:
            out[key] = torch.cat([inputs[key], torch.full_like(answers, fill)], 1)
    return out


def greedy_answers(viz, inputs, cache, start, greedy, rows, max_new_tokens):
    """The greedy answers of ``rows`` of one forced batch, decoded on from its own cache (a pool of
    that batch alone); None where the cache cannot be cut back."""
    pool = GreedyPool(viz, max_new_tokens)
    if not pool.add(list(rows), inputs, cache, start, greedy, rows):
        return None
    found = pool.decode()
    return [found[i] for i in rows]


@pytest.mark.parametrize("family", available_families())
def test_greedy_answers_on_the_cache_equal_fresh_generate(family, checkpoint, screenshot, monkeypatch):
    viz = lav.load(str(checkpoint(family)), device="cpu")
    text = getattr(viz.model.config, "text_config", viz.model.config)
    recurrent = "linear_attention" in (getattr(text, "layer_types", None) or ())
    images = []
    for k in range(3):
        img = np.asarray(screenshot).copy()
        img[: 40 * (k + 1), :] = 128  # each row another picture
        images.append(Image.fromarray(img))
    ends = viz.end_ids()
    with torch.inference_mode():
        prompt = prepare(viz, [Request(im, "click the red button", None) for im in images], NEW)
        start = prompt.inputs["input_ids"].shape[1]
        generated = viz.model.generate(
            **prompt.inputs, max_new_tokens=NEW, do_sample=False, temperature=None, top_p=None,
            top_k=None, pad_token_id=pad_id(viz),
        )  # fmt: skip
        want = [_answer(generated[b, start:], ends) for b in range(3)]
        k = min(4, *(len(w) for w in want))
        assert k >= 2, "the random model should write a few tokens"
        own = generated[:, start : start + k].clone()  # its own first k tokens, the last one changed
        seven, eight = (viz.processor.tokenizer.convert_tokens_to_ids(d) for d in "78")
        own[:, -1] = torch.tensor([seven if t != seven else eight for t in own[:, -1].tolist()])
        unlikely = prepare(viz, [Request(im, "click the red button", "(123, 456)") for im in images])
        cases = (
            (unlikely.inputs, [0, 1, 2]),
            (unlikely.inputs, [1]),
            (_forced(prompt.inputs, own), [0, 1, 2]),  # agrees up to its changed token: cut there
        )
        pool = GreedyPool(viz, NEW)
        for case, (inputs, rows) in enumerate(cases):
            out = viz.model(**inputs, use_cache=True)
            n = inputs["input_ids"].shape[1] - start
            greedy = out.logits[:, -(n + 1) :].argmax(-1)
            got = greedy_answers(viz, inputs, cache_of(out), start, greedy, rows, NEW)
            if recurrent:
                assert got is None
                continue
            assert got == [want[i] for i in rows]
            # The same rows pooled across the three forwards (each cut at its own place, then all at
            # the earliest) and decoded together; decoding above left this forward's cache as it was.
            assert pool.add([(case, i) for i in rows], inputs, cache_of(out), start, greedy, rows)
        assert poolable(viz.parts) != recurrent
        if not recurrent:
            # Joined for decoding a layer at a time: when layer j is handed over, the pool holds only
            # the layers after it (never the pool and its joined copy whole).
            left: list[int] = []
            joined = decode._joined

            def watched(pooled, keep):
                for kv in joined(pooled, keep):
                    left.append(sum(layer is not None for p in pooled for layer in p.layers))
                    yield kv

            monkeypatch.setattr(decode, "_joined", watched)
            assert pool.decode() == {(c, i): want[i] for c, (_, rows) in enumerate(cases) for i in rows}
            layers = len(viz.parts.decoder_attention)
            assert left == [len(cases) * (layers - 1 - j) for j in range(layers)]
            assert len(pool) == 0 and pool.bytes == 0


@pytest.mark.parametrize("family", available_families())
def test_cache_bytes_per_row_equal_the_forward_cache(family, checkpoint, screenshot):
    """`row_bytes` (what sizes a faithfulness batch and `lav plan` counts) equals the bytes of the
    key/value cache a forced forward keeps, per row, on every family whose cache keeps positions."""
    viz = lav.load(str(checkpoint(family)), device="cpu")
    if not poolable(viz.parts):
        pytest.skip("linear-attention layers keep a recurrent state; their steps generate afresh")
    requests = [Request(screenshot, "click the red button", "(123, 456)")] * 2
    inputs = prepare(viz, requests).inputs
    with torch.inference_mode():
        cache = cache_of(viz.model(**inputs, use_cache=True))
    held = sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)
    assert held == 2 * row_bytes(viz, inputs["input_ids"].shape[1])
