"""The click's digit confidence (`lav.confidence`) against a softmax of the scores computed here,
independently, in float64: a forced answer on a tiny Qwen3-VL (its forward's logits) and a generated
answer of the shipped demo model (the logits of a ``generate`` call the test makes itself)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import lav
from lav.confidence import LEADING
from lav.eval.demo_data import write_demo_benchmark

from .conftest import load
from .reference64 import float64_inputs, forced_prompt, load_float64_eager

pytestmark = pytest.mark.integration

INSTRUCTION = "Click the red button"
RESPONSE = "(107, 243)"
#: float32 model against the float64 reference: probabilities agree to float32 accumulation error.
ATOL = 1e-4


def _reference(logits: torch.Tensor, tokens: list[int]) -> tuple[list[float], list[float]]:
    """Probability of each token and entropy (nats) of each row of ``logits``, in float64."""
    logp = torch.log_softmax(logits.double(), dim=-1)
    p = [math.exp(float(logp[i, t])) for i, t in enumerate(tokens)]
    entropy = [float(-(logp[i].exp() * logp[i]).nansum()) for i in range(len(tokens))]
    return p, entropy


def _digit_positions(text: str) -> list[int]:
    # The tiny and Qwen tokenizers write one character (one digit) per token: index = character.
    return [i for i, ch in enumerate(text) if ch.isdigit()]


def test_a_forced_answers_digit_confidence_is_the_softmax_of_its_forward(checkpoint, screenshot):
    folder = checkpoint("qwen3_vl")
    model, processor = load(folder)
    res = lav.Visualizer(model, processor).analyze(screenshot, INSTRUCTION, response=RESPONSE)
    ref_model = load_float64_eager(folder)
    prompt = forced_prompt(processor, screenshot, INSTRUCTION, RESPONSE)
    ids = prompt.inputs["input_ids"][0]
    assert processor.tokenizer.decode(ids[prompt.answer_start :]) == RESPONSE
    with torch.no_grad():
        logits = ref_model(**float64_inputs(prompt.inputs)).logits[0]
    rows = _digit_positions(RESPONSE)
    positions = [prompt.answer_start + i for i in rows]
    p, entropy = _reference(logits[[q - 1 for q in positions]], [int(ids[q]) for q in positions])

    digits = res.click.digits
    assert [d["token"] for d in digits] == [RESPONSE[i] for i in rows]
    assert [d["axis"] for d in digits] == ["x"] * 3 + ["y"] * 3
    np.testing.assert_allclose([d["p"] for d in digits], p, atol=ATOL, rtol=0)
    np.testing.assert_allclose([d["entropy"] for d in digits], entropy, atol=ATOL, rtol=0)
    assert res.click.confidence == pytest.approx(math.prod(p), rel=1e-3)
    # A random model spreads its bets: the check is not of ones against ones.
    assert min(p) < 0.5 and max(entropy) > 0.5

    # Saved and loaded back equal, fields named as the README says.
    out = res.save(folder.parent / "forced-out")
    data = json.loads((out / "result.json").read_text())
    assert set(data["click"]) >= {"confidence", "digits", "alternatives"}
    assert lav.Result.load(out) == res


def test_a_generated_answers_digit_confidence_is_the_softmax_of_generates_own_scores(tmp_path):
    data = write_demo_benchmark(tmp_path / "data", n=2)
    entry = json.loads(next((data / "annotations").glob("*base*.json")).read_text())[0]
    image = Image.open(data / "images" / entry["img_filename"]).convert("RGB")
    viz = lav.load("demo", device="cpu")
    res = viz.analyze(image, entry["instruction"])
    assert res.click is not None, res.response

    # The test's own generate, on the prompt written here, with its per-step logits.
    processor, model = viz.processor, viz.model
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": entry["instruction"]}]}
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(
            **inputs, max_new_tokens=32, do_sample=False, output_logits=True, return_dict_in_generate=True
        )
    start = inputs["input_ids"].shape[1]
    answer = out.sequences[0, start:].tolist()
    assert processor.tokenizer.decode(answer, skip_special_tokens=True).startswith(res.response)
    rows = _digit_positions(res.response)
    p, entropy = _reference(torch.stack([out.logits[i][0] for i in rows]), [answer[i] for i in rows])

    digits = res.click.digits
    assert [d["token"] for d in digits] == [res.response[i] for i in rows]
    np.testing.assert_allclose([d["p"] for d in digits], p, atol=ATOL, rtol=0)
    np.testing.assert_allclose([d["entropy"] for d in digits], entropy, atol=ATOL, rtol=0)
    assert res.click.confidence == pytest.approx(math.prod(p), rel=1e-3)

    # The most likely other click changes one leading digit: the one whose best other digit comes
    # closest to the digit written (any second change multiplies in another ratio below one).
    tok = processor.tokenizer
    best = None
    for number in _numbers(res.response):
        for i in number[:LEADING]:
            probs = torch.softmax(out.logits[i][0].double(), dim=-1)
            for t in torch.topk(probs, 16).indices.tolist():
                other = tok.decode([t])
                if other.isdigit() and len(other) == 1 and t != answer[i]:
                    ratio = float(probs[t] / probs[answer[i]])
                    if best is None or ratio > best[0]:
                        best = (ratio, i, other)
    assert best is not None
    ratio, i, other = best
    alt = res.click.alternatives[0]
    assert alt["p"] == pytest.approx(res.click.confidence * ratio, rel=1e-3)
    changed = res.response[:i] + other + res.response[i + 1 :]
    assert alt["raw"] == [float(v) for v in changed.strip("()").split(",")]
    assert len(res.click.alternatives) == 3
    assert all(a["p"] <= alt["p"] for a in res.click.alternatives)


def _numbers(text: str) -> list[list[int]]:
    """Character indices of each run of digits in ``text``."""
    runs: list[list[int]] = []
    for i, ch in enumerate(text):
        if ch.isdigit():
            if runs and runs[-1][-1] == i - 1:
                runs[-1].append(i)
            else:
                runs.append([i])
    return runs
