"""A forced answer's agreement (`lav.agreement`) against a float64 eager forward written without lav:
the log-probabilities and greedy tokens come from the one forward that forces the answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import lav
from lav.models import unwrap
from lav.testing import tiny_checkpoint

from .reference64 import forced_prompt, load_float64_eager

INSTRUCTION = "Click the Save button"
RESPONSE = "(120, 340)"


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_agreement_equals_an_independent_float64_forward(family, tmp_path):
    folder = tiny_checkpoint(family, tmp_path / family)
    viz = lav.load(folder, device="cpu", dtype=torch.float64)
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (100, 120, 3), dtype=np.uint8))
    calls = []
    hook = unwrap(viz.model).register_forward_hook(lambda *a: calls.append(1))
    try:
        res = viz.analyze(image, INSTRUCTION, response=RESPONSE)
    finally:
        hook.remove()
    assert len(calls) == 1  # the forward that forces the answer, nothing more
    # float64 on both sides; lav runs sdpa and its recording kernels, the reference eager attention.

    ref = load_float64_eager(folder)
    prompt = forced_prompt(viz.processor, image, INSTRUCTION, RESPONSE)
    with torch.no_grad():
        logits = ref(**prompt.inputs).logits[0]
    ids = prompt.inputs["input_ids"][0, prompt.answer_start :].tolist()
    logp = torch.log_softmax(logits[prompt.answer_start - 1 : -1], dim=-1)
    per_token = [float(logp[i, t]) for i, t in enumerate(ids)]
    greedy = logp.argmax(dim=-1).tolist()

    a = res.agreement
    assert a["tokens"] == len(ids) == len(res.answer_tokens)
    assert a["logprob"] == pytest.approx(sum(per_token), abs=1e-6)
    # The tiny tokenizer writes one token per character: the digits are tokens 1-3 and 6-8.
    digits = [i for i, t in enumerate(res.answer_tokens) if t.isdigit()]
    assert digits == [1, 2, 3, 6, 7, 8]
    assert a["coord_logprob"] == pytest.approx(sum(per_token[i] for i in digits), abs=1e-6)
    differ = [i for i, (g, t) in enumerate(zip(greedy, ids, strict=True)) if g != t]
    assert a["agrees"] is (not differ)
    assert a["coords_agree"] is (not set(differ) & set(digits))
    if differ:
        first = a["first_disagreement"]
        assert first["index"] == differ[0]
        assert first["greedy"] == viz.processor.tokenizer.decode([greedy[differ[0]]])
        assert first["logprob"] == pytest.approx(per_token[differ[0]], abs=1e-6)


def test_a_generated_answer_has_no_agreement_and_a_saved_forced_one_loads_back(tmp_path):
    viz = lav.load(tiny_checkpoint("qwen3_vl", tmp_path / "m"), device="cpu")
    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (80, 96, 3), dtype=np.uint8))
    assert viz.analyze(image, INSTRUCTION, max_new_tokens=3).agreement is None
    res = viz.analyze(image, INSTRUCTION, response=RESPONSE)
    assert lav.Result.load(res.save(tmp_path / "r")) == res
