"""`lav.faithful.measure.continue_greedy`: greedy decoding continued on a forced forward's own cache
equals a fresh `generate` from the prompt, on tiny models of every family.

A batch of differently masked copies of one screenshot with one forced answer the random model would
not write: its greedy answers differ from the forced one at the first token already, or later where
the cut is set later; the continued rows must equal `generate`'s greedy answers token for token (up
to the end token). Layers that keep a recurrent state (Qwen3.5's linear attention) cannot be cut back:
None, and the caller generates afresh.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import lav
from lav.faithful.measure import cache_of, continue_greedy
from lav.stages import Request, pad_id, prepare
from lav.testing import available_families

pytestmark = pytest.mark.slow

FAMILIES = available_families()
NEW = 10


def _answer(ids: torch.Tensor, ends: set[int]) -> list[int]:
    out = []
    for t in ids.tolist():
        if t in ends:
            break
        out.append(t)
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_continued_greedy_equals_fresh_generate(family, checkpoint, screenshot):
    viz = lav.load(str(checkpoint(family)), device="cpu")
    text = getattr(viz.model.config, "text_config", viz.model.config)
    recurrent = "linear_attention" in (getattr(text, "layer_types", None) or ())
    images = []
    for k in range(3):
        img = np.asarray(screenshot).copy()
        img[: 40 * (k + 1), :] = 128  # each row another picture
        images.append(Image.fromarray(img))
    forced = [Request(im, "click the red button", "(123, 456)") for im in images]
    free = [Request(im, "click the red button", None) for im in images]
    ends = viz.end_ids()
    with torch.inference_mode():
        fresh = prepare(viz, free, NEW)
        generated = viz.model.generate(
            **fresh.inputs, max_new_tokens=NEW, do_sample=False, temperature=None, top_p=None, top_k=None,
            pad_token_id=pad_id(viz),
        )  # fmt: skip
        want = [_answer(generated[b, fresh.answer_starts[b] :], ends) for b in range(len(images))]
        prepared = prepare(viz, forced)
        a = prepared.answer_starts[0]
        for first in (0, 2):  # cut at the answer's start, and two forced tokens in
            out = viz.model(**prepared.inputs, use_cache=True)
            got = continue_greedy(viz, prepared.inputs, cache_of(out), a + first, NEW - first)
            if recurrent:
                assert got is None
                continue
            assert got is not None
            if first == 0:
                assert [_answer(got[b, a:], ends) for b in range(len(images))] == want
            else:
                # Two forced tokens kept, then greedy: the same as generating after them.
                ids = torch.cat(
                    [fresh.inputs["input_ids"], prepared.inputs["input_ids"][:, a : a + first]], 1
                )
                inputs = {**fresh.inputs, "input_ids": ids}
                for key in ("attention_mask", "mm_token_type_ids"):
                    if key in inputs:
                        inputs[key] = torch.cat([inputs[key], inputs[key][:, -first:]], 1)
                gen = viz.model.generate(
                    **inputs, max_new_tokens=NEW - first, do_sample=False, temperature=None, top_p=None,
                    top_k=None, pad_token_id=pad_id(viz),
                )  # fmt: skip
                assert [_answer(got[b, a:], ends) for b in range(3)] == [
                    _answer(gen[b, a:], ends) for b in range(3)
                ]
