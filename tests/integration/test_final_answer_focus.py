"""The decision focus of a model that reasons first is built on its final answer's digits (issue 21).

A forced UI-TARS-style response names a point in its Thought and clicks another in its Action. The
focus rows must be the queries before the Action's digits, checked against the float64 reference
(tests/integration/reference64.py, no lav code) computed on rows chosen here by counting digits.
"""

from __future__ import annotations

import json

import numpy as np

import lav
from lav.result import Result

from .conftest import load
from .reference64 import digit_rows, float64_inputs, focus_reference, forced_prompt, load_float64_eager

FAMILY = "qwen2_5_vl"  # UI-TARS-1.5's family
INSTRUCTION = "Click the red button"
# Form of bytedance/UI-TARS codes/ui_tars/prompt.py: 'Thought: ...' then 'Action: click(start_box=...)'.
RESPONSE = "Thought: The icon at (31, 64) is greyed out.\nAction: click(start_box='(107,243)')"
ATOL = 1e-4


def test_focus_rows_are_the_final_answers_digits_not_the_reasonings(checkpoint, screenshot, tmp_path):
    folder = checkpoint(FAMILY)
    model, processor = load(folder)
    res = lav.Visualizer(model, processor).analyze(screenshot, INSTRUCTION, response=RESPONSE)

    reference = load_float64_eager(folder)
    prompt = forced_prompt(processor, screenshot, INSTRUCTION, RESPONSE)
    inputs = float64_inputs(prompt.inputs)
    digits = digit_rows(processor.tokenizer, inputs["input_ids"], prompt.answer_start)
    # "31", "64" in the Thought, then "107", "243": one token per digit.
    assert len(digits) == 10
    reasoning, final = digits[:4], digits[4:]
    x, y = final[:3], final[3:]

    assert res.click is not None and res.click.raw == (107.0, 243.0)
    assert res.focus_rows == final
    for name, rows in (("focus", final), ("focus_x", x), ("focus_y", y)):
        ref = focus_reference(reference, inputs, prompt.answer_start, rows)
        np.testing.assert_allclose(getattr(res, name), ref, atol=ATOL, rtol=0, err_msg=name)
    # Not a degenerate check: the reasoning's digits look elsewhere.
    wrong = focus_reference(reference, inputs, prompt.answer_start, reasoning)
    assert np.abs(wrong - res.focus).max() > 0.05

    start, end = res.answer_span
    assert res.response[start:end] == "click(start_box='(107,243)')" and not res.refused
    res.save(tmp_path / "out")
    record = json.loads((tmp_path / "out" / "result.json").read_text())
    assert record["answer_span"] == [start, end] and record["refused"] is False
    assert record["click"]["candidates"] == [[res.click.x, res.click.y]]
    assert Result.load(tmp_path / "out") == res


def test_a_refusal_sentinel_is_no_click_and_is_saved_as_refused(checkpoint, screenshot, tmp_path):
    folder = checkpoint(FAMILY)
    model, processor = load(folder)
    viz = lav.Visualizer(model, processor)
    res = viz.analyze(screenshot, INSTRUCTION, response="[-1, -1]")
    assert res.click is None and res.refused
    assert res.click_error == "the answer is the refusal sentinel [-1, -1]"
    # The same answer from a model whose rules have no sentinels is a click off the image.
    plain = viz.analyze(
        screenshot, INSTRUCTION, response="[-1, -1]", answer_rules=lav.AnswerRules(refusal_sentinels=())
    )
    assert plain.click is not None and not plain.refused and not plain.click.inside_image
    # A preset sets the Visualizer's rules.
    viz.answer_rules = lav.AnswerRules(refusal_phrases=("no target",))
    said = viz.analyze(screenshot, INSTRUCTION, response="No target here")
    assert said.click is None and said.refused

    res.save(tmp_path / "out")
    record = json.loads((tmp_path / "out" / "result.json").read_text())
    assert record["refused"] is True and record["click"] is None
    assert Result.load(tmp_path / "out") == res
