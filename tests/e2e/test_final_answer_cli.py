"""`lav run` on answers that reason first or refuse: result.json holds the final answer's click and
focus rows, the part of the response read (``answer_span``) and ``refused`` (issue 21)."""

from __future__ import annotations

import json

import transformers

from lav.cli import main

REASONING = "Thought: The icon at (31, 64) is greyed out.\nAction: click(start_box='(107,243)')"


def run_cli(*args):
    return main([str(a) for a in args])


def test_run_clicks_the_final_answer_and_focuses_on_its_digits(checkpoints, screenshot, tmp_path, capsys):
    model = checkpoints["qwen2_5_vl"]["model"]
    out = tmp_path / "out"
    args = ("run", "--model", model, "--image", screenshot, "--instruction", "Click it", "--out", out)
    assert run_cli(*args, "--response", REASONING) == 0
    result = json.loads((out / "result.json").read_text())

    assert result["click"]["raw"] == [107.0, 243.0]
    start, end = result["answer_span"]
    assert result["response"][start:end] == "click(start_box='(107,243)')"
    # The focus rows, counted by the tokenizer (one token per digit): the Action's six digits.
    tok = transformers.AutoProcessor.from_pretrained(model).tokenizer
    ids = tok(REASONING, add_special_tokens=False)["input_ids"]
    digits = [i for i, t in enumerate(ids) if tok.decode([t]).strip().isdigit()]
    assert result["focus_rows"] == digits[-6:] and result["focus_tokens"] == "coordinate digits"
    assert result["refused"] is False
    assert "click: (" in capsys.readouterr().out


def test_run_reports_a_refusal_as_no_click(checkpoints, screenshot, tmp_path, capsys):
    out = tmp_path / "out"
    code = run_cli(
        "run",
        "--model",
        checkpoints["qwen3_vl"]["model"],
        "--image",
        screenshot,
        "--instruction",
        "Click the missing button",
        "--response",
        "[-1, -1]",
        "--out",
        out,
    )
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    assert result["click"] is None and result["refused"] is True
    assert result["click_error"] == "the answer is the refusal sentinel [-1, -1]"
    assert "the model refused" in capsys.readouterr().out
