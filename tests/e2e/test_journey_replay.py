"""Journey: ``lav demo-data`` -> ``lav eval`` -> ``lav eval --responses <that samples.jsonl>``.

Replaying lav's own answers in one forced forward gives the clicks, scores and maps of the run that
generated them; an answer transformers would not have written (a digit changed) is flagged at that
token; a sample the file does not answer is an error inside n; an answer for no sample is reported.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from lav import demo as lav_demo
from lav.eval.layout import safe_id
from lav.result import Result

from .journeys import demo_data, lav

pytestmark = pytest.mark.slow

DEMO_BASE = Path(lav_demo.__file__).parent / "weights" / "base"

N = 6


def _records(folder):
    return {r["id"]: r for r in map(json.loads, (folder / "samples.jsonl").read_text().splitlines())}


def _eval(data, out, *extra):
    lav(
        "eval", "--model", "demo", "--adapter", "demo", "--data", data, "--out", out,
        "--device", "cpu", "--batch-size", 2, "--save-maps", *extra,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("journey-replay")
    data = demo_data(root / "data", N)
    generated = _eval(data, root / "generated")
    replayed = _eval(data, root / "replayed", "--responses", generated / "samples.jsonl")
    return data, generated, replayed


def test_replaying_lav_eval_samples_gives_the_same_clicks_scores_and_maps(runs):
    _, generated, replayed = runs
    gen, rep = _records(generated), _records(replayed)
    assert gen.keys() == rep.keys() and len(gen) == N
    for sid, g in gen.items():
        r = rep[sid]
        for key in ("response", "click", "correct", "refused", "wrong_format", "conventions"):
            assert r[key] == g[key], (sid, key)
        # lav generated these greedily: transformers agrees with every token of its own answers.
        assert r["agreement"]["agrees"] is True and r["agreement"]["first_disagreement"] is None
        a, b = (Result.load(f / "samples" / safe_id(sid)) for f in (generated, replayed))
        assert a.forced_response is False and b.forced_response is True
        assert a.maps.keys() == b.maps.keys()
        for name in a.maps:
            np.testing.assert_allclose(
                b.maps[name].values, a.maps[name].values, atol=1e-5, err_msg=f"{sid} {name}"
            )
            for key, arr in a.maps[name].arrays.items():
                np.testing.assert_allclose(
                    b.maps[name].arrays[key], arr, atol=1e-5, err_msg=f"{sid} {name}/{key}"
                )
    summary = json.loads((replayed / "summary.json").read_text())
    g_summary = json.loads((generated / "summary.json").read_text())
    assert summary["accuracy"] == g_summary["accuracy"]
    assert summary["responses"]["format"] == "lav" and summary["responses"]["engine"] == "lav"
    assert summary["responses"]["n"] == N and summary["responses"]["missing"] == 0
    assert summary["agreement"]["answer"] == 1.0 and summary["agreement"]["disagree"] == 0
    assert summary["agreement"]["mean_logprob"] < 0
    assert "Where the engines disagree" in (replayed / "report.html").read_text()


def _plant(text: str) -> tuple[str, int]:
    """``text`` with its first digit changed, and that digit's character index."""
    i = next(n for n, c in enumerate(text) if c.isdigit())
    return text[:i] + ("7" if text[i] != "7" else "3") + text[i + 1 :], i


def test_a_planted_digit_is_flagged_at_its_token_and_a_missing_answer_is_an_error(runs, tmp_path, capsys):
    data, generated, _ = runs
    gen = _records(generated)
    ids = [sid for sid, r in gen.items() if r["click"] is not None]
    planted_id, dropped_id = ids[0], ids[1]
    planted, _ = _plant(gen[planted_id]["response"])
    rows = [
        {"id": sid, "response": planted if sid == planted_id else r["response"]}
        for sid, r in gen.items()
        if sid != dropped_id
    ]
    rows.append({"id": "not-a-sample", "response": "(1, 2)"})
    path = tmp_path / "vllm.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = _eval(data, tmp_path / "out", "--responses", path, "--engine", "vllm")
    err = capsys.readouterr().err
    assert "1 answers match no sample (first 'not-a-sample')" in err
    rep = _records(out)
    # The token index where the planted answer's tokens first differ from the original's, by the
    # tokenizer alone.
    tok = AutoTokenizer.from_pretrained(DEMO_BASE)
    want, given = tok(gen[planted_id]["response"])["input_ids"], tok(planted)["input_ids"]
    index = next(i for i, (a, b) in enumerate(zip(want, given, strict=True)) if a != b)
    a = rep[planted_id]["agreement"]
    assert a["agrees"] is False and a["coords_agree"] is False
    assert a["first_disagreement"]["index"] == index
    assert a["first_disagreement"]["token"] == tok.decode([given[index]])
    assert a["first_disagreement"]["greedy"] == tok.decode([want[index]])
    for sid in gen:
        if sid not in (planted_id, dropped_id):
            assert rep[sid]["agreement"]["agrees"] is True
    assert rep[dropped_id]["error"] == "no answer in vllm.jsonl" and rep[dropped_id]["correct"] is False
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == N and summary["n_errors"] == 1
    assert summary["errors"] == [{"id": dropped_id, "reason": "no answer in vllm.jsonl"}]
    assert summary["responses"]["engine"] == "vllm" and summary["responses"]["format"] == "jsonl"
    assert summary["responses"]["unmatched"] == {"count": 1, "first": "not-a-sample"}
    assert summary["agreement"]["n"] == N - 1 and summary["agreement"]["disagree"] == 1
    report = (out / "report.html").read_text()
    section = report[report.index("Where the engines disagree") : report.index("<h2>Accuracy")]
    assert planted_id in section


def test_compare_base_with_responses_is_refused_in_one_line(runs, tmp_path, capsys):
    from lav.cli import main

    data, generated, _ = runs
    argv = ["eval", "--model", "demo", "--adapter", "demo", "--data", str(data), "--out", str(tmp_path / "o")]
    code = main([*argv, "--compare-base", "--responses", str(generated / "samples.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and "--compare-base with --responses" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "samples.jsonl").exists()
