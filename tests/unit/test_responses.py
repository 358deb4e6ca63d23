"""`lav eval --responses` readers: each format from a fixture that follows its published schema field
for field (the source named at each fixture), detection, matching by id (or place), and the
agreement summary against figures worked by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lav.agreement import agreement
from lav.confidence import TokenScores, forced_scores
from lav.errors import InputError
from lav.eval.replay import agreement_summary, disagreements, strip_end
from lav.eval.responses import read_responses
from lav.eval.samples import Sample


def _samples(*ids: str) -> list[Sample]:
    return [
        Sample(id=i, image=Path(f"{i}.png"), instruction="Click it", target="box", box=(0, 0, 1, 1))
        for i in ids
    ]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_screenspot_pro_results_json_is_read_from_its_details(tmp_path):
    # The file eval_screenspot_pro.py writes (likaixin2000/ScreenSpot-Pro-GUI-Grounding, commit
    # bd8bbbb4): json.dump(result_report, indent=4) (l. 439) of {"details", "metrics"} (l. 316-329);
    # each detail is sample_result (l. 403-417) + bbox (positives, l. 420-423) + correctness (l. 431).
    # raw_response as models/qwen2vl.py returns it (decoded with special tokens kept, l. 119-129).
    detail = {
        "id": "photoshop_macos_12",
        "img_path": "images/photoshop_macos/12.png",
        "group": "Creative",
        "platform": "macos",
        "application": "photoshop",
        "lang": "en",
        "instruction_style": "instruction",
        "prompt_to_evaluate": "open the layer menu",
        "gt_type": "positive",
        "ui_type": "text",
        "task_filename": "photoshop_macos",
        "pred": [1520.0, 88.5],
        "raw_response": "<|box_start|>(512,40)<|box_end|><|im_end|>",
        "bbox": [1490, 70, 1560, 100],
        "correctness": "correct",
    }
    negative = {**detail, "id": "photoshop_macos_13", "gt_type": "negative", "pred": None}
    negative["raw_response"] = "Target does not exist<|im_end|>"
    del negative["bbox"]
    negative["correctness"] = "correct"
    report = {"details": [detail, negative], "metrics": {"overall": {"num_total": 2, "action_acc": 1.0}}}
    path = tmp_path / "qwen2vl_results.json"
    path.write_text(json.dumps(report, indent=4), encoding="utf-8")
    r = read_responses(path)
    assert (r.format, r.engine, r.keyed_by) == ("screenspot-pro", "screenspot-pro", "id")
    m = r.match(_samples("photoshop_macos_12", "photoshop_macos_13", "photoshop_macos_14"))
    assert m.answers == {
        "photoshop_macos_12": "<|box_start|>(512,40)<|box_end|><|im_end|>",
        "photoshop_macos_13": "Target does not exist<|im_end|>",
    }
    assert m.missing == {"photoshop_macos_14": "no answer in qwen2vl_results.json"}
    # The forced answer is what precedes the end-of-turn marker (as lav's own answers are).
    assert (
        strip_end(m.answers["photoshop_macos_13"], ["<|im_end|>", "<|endoftext|>"]) == "Target does not exist"
    )


def test_screenspot_pro_multi_step_logs_and_repeated_ids_are_refused(tmp_path):
    logs = {"details": [{"id": "a", "raw_response": [{"step": 1}]}], "metrics": {}}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(logs), encoding="utf-8")
    with pytest.raises(InputError, match="raw_response is a list, not one generated text"):
        read_responses(path)
    # --inst_style all repeats each id once per style (eval_screenspot_pro.py l. 368-385).
    twice = {
        "details": [{"id": "a", "raw_response": "(1,2)"}, {"id": "a", "raw_response": "(3,4)"}],
        "metrics": {},
    }
    path.write_text(json.dumps(twice, indent=4), encoding="utf-8")
    with pytest.raises(InputError, match="answers id 'a' twice"):
        read_responses(path)


def test_clawgui_predictions_read_the_model_type_infer_field_and_its_errors(tmp_path):
    # ZJU-REAL/ClawGUI clawgui-eval/main.py (commit d990d3e3): the input sample copied, the answer
    # under f"{model_type}_infer" (l. 222-224) and, when inference failed, "error" with "" (l. 226-236).
    rows = [
        {
            "id": "screenspot-pro_0",
            "image": "image/screenspot-pro/pro_0.png",
            "question": "open the layer menu",
            "bbox": [1490, 70, 1560, 100],
            "qwen3vl_infer": '<tool_call>{"name":"computer_use","arguments":{"action":"left_click","coordinate":[512,40]}}</tool_call>',
        },
        {
            "id": "screenspot-pro_1",
            "image": "image/screenspot-pro/pro_1.png",
            "question": "close it",
            "bbox": [0, 0, 10, 10],
            "qwen3vl_infer": "",
            "error": "CUDA out of memory",
        },
    ]
    r = read_responses(_jsonl(tmp_path / "predictions.jsonl", rows), engine="vllm")
    assert (r.format, r.engine) == ("clawgui", "vllm")
    m = r.match(_samples("screenspot-pro_0", "screenspot-pro_1"))
    assert list(m.answers) == ["screenspot-pro_0"] and "left_click" in m.answers["screenspot-pro_0"]
    assert m.missing == {
        "screenspot-pro_1": "predictions.jsonl: the engine recorded an error: CUDA out of memory"
    }


def test_lmms_eval_samples_are_matched_by_place_in_both_published_shapes(tmp_path):
    # EvolvingLMMs-Lab/lmms-eval (commit 75571cfe) evaluator.py l. 1277-1296 and
    # loggers/evaluation_tracker.py l. 258-299: one request per doc flattens filtered_resps to the
    # text, resps is dropped when equal; releases before v0.7 kept resps [[text]], filtered [text].
    new = {
        "doc_id": 0,
        "target": "[0.1, 0.2, 0.3, 0.4]",
        "filtered_resps": "(500, 300)",
        "token_counts": [None],
        "doc_hash": "4f1c",
        "input": "open the layer menu",
        "screenspot_point_acc": 1.0,
    }
    old = {
        "doc_id": 2,
        "target": "[0.1, 0.2, 0.3, 0.4]",
        "resps": [["<think>the menu</think>(40, 60)"]],
        "filtered_resps": ["(40, 60)"],
        "doc_hash": "9a0e",
        "input": "close it",
    }
    r = read_responses(_jsonl(tmp_path / "20260101_samples_screenspot_rec.jsonl", [new, old]))
    assert (r.format, r.keyed_by) == ("lmms-eval", "position")
    m = r.match(_samples("a", "b", "c"))
    # The generated text (resps), not the filtered extraction, is what is forced.
    assert m.answers == {"a": "(500, 300)", "c": "<think>the menu</think>(40, 60)"}
    assert set(m.missing) == {"b"}
    several = {**new, "doc_id": 1, "filtered_resps": ["A", "B"]}
    with pytest.raises(InputError, match="holds 2 responses"):
        read_responses(_jsonl(tmp_path / "mc.jsonl", [several]))


def test_plain_jsonl_matches_by_id_counts_missing_and_reports_unmatched(tmp_path):
    rows = [
        {"id": "a", "response": "(1, 2)"},
        {"id": 7, "response": None},
        {"id": "zz", "response": "(3, 4)"},
    ]
    r = read_responses(_jsonl(tmp_path / "out.jsonl", rows))
    assert r.format == "jsonl"
    m = r.match(_samples("a", "7", "b"))
    assert m.answers == {"a": "(1, 2)"}
    assert m.missing == {"7": "out.jsonl: no answer (response is null)", "b": "no answer in out.jsonl"}
    assert m.unmatched == ["zz"]
    d = r.describe(m)
    assert (d["n"], d["answered"], d["missing"], d["unmatched"]) == (3, 1, 2, {"count": 1, "first": "zz"})


def test_a_file_of_no_known_format_is_refused_in_one_line(tmp_path):
    with pytest.raises(InputError, match='needs one JSON object per line with "id" and "response"'):
        read_responses(_jsonl(tmp_path / "x.jsonl", [{"key": "a", "text": "(1, 2)"}]))
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "response": "x"}\nnot json\n', encoding="utf-8")
    with pytest.raises(InputError, match="line 2 is not JSON"):
        read_responses(tmp_path / "bad.jsonl")


def test_token_scores_are_the_log_softmax_at_the_position_before_each_token():
    torch.manual_seed(0)
    logits = torch.randn(2, 7, 11)
    starts, answers = [4, 5], [[3, 9, 1], [0, 2]]
    ids = torch.zeros(2, 7, dtype=torch.long)
    for b, (start, toks) in enumerate(zip(starts, answers, strict=True)):
        ids[b, start : start + len(toks)] = torch.tensor(toks)
    got = forced_scores(logits, ids, starts, [len(a) for a in answers])
    for b, (start, toks) in enumerate(zip(starts, answers, strict=True)):
        for i, t in enumerate(toks):
            row = logits[b, start + i - 1].double()
            want = float(row[t] - torch.logsumexp(row, 0))
            assert math.isclose(got[b].chosen[i], want, abs_tol=1e-5)
            assert got[b].top_ids[i][0] == int(row.argmax())


class _Tok:
    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(ord("a") + i) for i in ids)


def _scores(logprobs, greedy) -> TokenScores:
    """Per answer token: the given token's log-probability, and the greedy token first among the top."""
    top = np.array([[g] for g in greedy], dtype=np.int64)
    return TokenScores(np.array(logprobs), np.zeros(len(logprobs)), top, np.zeros(top.shape))


def test_agreement_names_the_first_token_greedy_would_not_write():
    scores = _scores((-0.1, -0.2, -2.0, -0.3), (5, 6, 1, 8))
    a = agreement(scores, [5, 6, 7, 8], ["(", "1", "2", ")"], [1, 2], _Tok())
    assert a["agrees"] is False and a["coords_agree"] is False
    assert a["first_disagreement"] == {"index": 2, "token": "2", "greedy": "b", "logprob": -2.0}
    assert math.isclose(a["logprob"], -2.6) and math.isclose(a["coord_logprob"], -2.2)
    only_text = agreement(scores, [5, 6, 7, 8], ["(", "1", "2", ")"], [1], _Tok())
    assert only_text["coords_agree"] is True and only_text["agrees"] is False
    no_coords = agreement(_scores((-1.0,), (3,)), [3], ["no"], [], _Tok())
    assert no_coords["coords_agree"] is None and no_coords["coord_logprob"] is None and no_coords["agrees"]


def test_agreement_summary_by_hand():
    def rec(i, agrees, coords, lp, clp):
        first = None if agrees else {"index": 0, "token": "x", "greedy": "y", "logprob": -1.0}
        return {
            "id": i,
            "agreement": {
                "agrees": agrees,
                "coords_agree": coords,
                "logprob": lp,
                "coord_logprob": clp,
                "first_disagreement": first,
            },
        }

    records = [
        rec("a", True, True, -1.0, -0.5),
        rec("b", False, True, -3.0, -0.5),  # differs outside the coordinates
        rec("c", False, False, -2.0, -1.5),
        rec("d", True, None, -4.0, None),  # a refusal: no coordinates
        {"id": "e", "error": "no answer in f.jsonl", "response": None},
    ]
    s = agreement_summary(records)
    assert s == {
        "n": 4,
        "coords": 2 / 3,
        "n_coords": 3,
        "answer": 2 / 4,
        "mean_logprob": -2.5,
        "mean_coord_logprob": -2.5 / 3,
        "disagree": 2,
    }
    # Coordinate disagreements first, then the least likely answers.
    assert [r["id"] for r in disagreements(records)] == ["c", "b"]
