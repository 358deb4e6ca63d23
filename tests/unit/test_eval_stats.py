"""The evaluation summary against hand-computed values: Wilson, exact McNemar, flips, groups, the
coordinate-convention check and per-layer means; and the durable sample log."""

from __future__ import annotations

import json
import math

import pytest

from lav.errors import LavError
from lav.eval import log
from lav.eval.stats import flips, mcnemar_exact, summarize, wilson
from lav.livefolder import OutputFolder


def test_wilson_matches_the_formula_worked_by_hand():
    # k=8, n=10, z=1.96: centre (0.8 + 0.19208) / 1.38416, half 1.96*sqrt(0.016 + 0.0096040) / 1.38416
    low, high = wilson(8, 10)
    centre = (0.8 + 1.96**2 / 20) / (1 + 1.96**2 / 10)
    half = 1.96 * math.sqrt(0.8 * 0.2 / 10 + 1.96**2 / 400) / (1 + 1.96**2 / 10)
    assert low == pytest.approx(centre - half) and high == pytest.approx(centre + half)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson(0, 0) is None


@pytest.mark.parametrize(
    ("fixed", "broken", "p"),
    [
        (5, 1, 2 * (1 + 6) / 64),  # 0.21875
        (1, 5, 2 * (1 + 6) / 64),  # symmetric
        (10, 0, 2 / 1024),  # 0.001953125
        (3, 3, 1.0),  # 2 * 42/64 > 1: capped
        (0, 0, 1.0),  # nothing to test
        (9, 2, 2 * (1 + 11 + 55) / 2048),  # 0.0654296875
    ],
)
def test_mcnemar_exact_is_the_two_sided_binomial_on_discordant_pairs(fixed, broken, p):
    assert mcnemar_exact(fixed, broken) == pytest.approx(p, rel=1e-12)


def test_flips_count_each_cell_of_the_paired_table():
    pairs = [(False, True)] * 3 + [(True, False)] + [(True, True)] * 2 + [(False, False)] * 4
    assert flips(pairs) == {"fixed": 3, "broken": 1, "both_right": 2, "both_wrong": 4}


def _outcome(correct, *, convention="relative-1000", conventions=None, pointing=None, mass=None, heads=None):
    return {
        "response": "(1, 2)",
        "click": None if not correct else {"x": 1.0, "y": 2.0},
        "correct": correct,
        "wrong_format": False,
        "convention": convention,
        "conventions": conventions or {"relative-1000": correct, "absolute-resized": False},
        "maps": {"focus": {"pointing": pointing, "mass": mass, "image_share": [0.5, 0.25]}},
        "heads": heads,
    }


def _record(sid, correct, group, base=None, **kw):
    return {
        "id": sid,
        "groups": {"ui_type": group},
        "error": None,
        "chance": 0.1,
        "layers": {"focus": [4, 7]},
        **_outcome(correct, **kw),
        "base": base,
    }


def test_summary_by_group_flips_and_layers_by_hand():
    recs = [
        _record(
            "a",
            True,
            "icon",
            _outcome(False),
            pointing=[True, False],
            mass=[0.5, 0.1],
            heads=[[1, 0], [0, 0]],
        ),
        _record(
            "b", True, "text", _outcome(True), pointing=[True, True], mass=[0.3, None], heads=[[1, 0], [1, 0]]
        ),
        _record(
            "c",
            False,
            "icon",
            _outcome(True),
            pointing=[False, False],
            mass=[0.1, 0.2],
            heads=[[0, 1], [0, 0]],
        ),
        {"id": "d", "groups": {"ui_type": "icon"}, "error": "image file x does not exist", "correct": False},
    ]
    s = summarize(recs, ["ui_type"])
    # The sample whose image is missing stays in n, scored wrong (and wrong for the base model too).
    assert (s["n"], s["correct"], s["n_samples"], s["n_errors"]) == (4, 2, 4, 1)
    assert s["accuracy"] == pytest.approx(2 / 4)
    assert s["errors"] == [{"id": "d", "reason": "image file x does not exist"}]
    assert s["by"]["ui_type"]["icon"]["n"] == 3 and s["by"]["ui_type"]["icon"]["correct"] == 1
    assert s["by"]["ui_type"]["text"]["accuracy"] == 1.0
    assert s["flips"] == {"fixed": 1, "broken": 1, "both_right": 1, "both_wrong": 1}
    assert s["mcnemar_p"] == 1.0
    assert s["base"]["correct"] == 2
    focus = s["layers"]["focus"]
    assert [r["layer"] for r in focus] == [4, 7]
    assert focus[0]["pointing"] == pytest.approx(2 / 3) and focus[1]["pointing"] == pytest.approx(1 / 3)
    assert focus[0]["mass"] == pytest.approx(0.3) and focus[1]["mass"] == pytest.approx(0.15)  # None skipped
    assert focus[0]["image_share"] == 0.5
    assert s["chance"] == pytest.approx(0.1)
    # Head (layer 4, head 0) hits in a and b: 2/3, best; ties broken by layer then head.
    assert s["heads"][0] == {"layer": 4, "head": 0, "pointing": pytest.approx(2 / 3), "n": 3}
    assert [(h["layer"], h["head"]) for h in s["heads"][1:3]] == [(4, 1), (7, 0)]


def test_convention_check_flags_a_convention_that_would_score_better():
    wrong_reading = {"relative-1000": False, "absolute-resized": True}
    recs = [_record(str(i), False, "x", conventions=wrong_reading) for i in range(4)]
    recs.append(_record("ok", True, "x"))
    conv = summarize(recs)["conventions"]
    assert conv["used"] == {"relative-1000": 5}
    assert conv["accuracy"] == {"absolute-resized": 0.8, "relative-1000": 0.2}
    assert "absolute-resized" in conv["note"] and "80.0%" in conv["note"]
    fine = summarize([_record("ok", True, "x")])["conventions"]
    assert fine["note"] is None


def test_summary_does_not_depend_on_record_order_of_equal_sets():
    recs = [_record(str(i), i % 3 == 0, "g" + str(i % 2), _outcome(i % 2 == 0)) for i in range(9)]
    assert summarize(recs) == summarize(list(reversed(recs)))


def test_sample_log_cuts_a_torn_last_line_and_resumes(tmp_path):
    path = tmp_path / log.SAMPLES_FILE
    with OutputFolder(tmp_path) as folder:
        log.SampleLog(folder).append([{"id": "a", "x": 1}, {"id": "b", "x": 2}])
    with open(path, "a") as f:
        f.write('{"id": "c", "x"')  # killed mid-line, after the manifest recorded a and b
    with OutputFolder(tmp_path) as folder:
        sl = log.SampleLog(folder)
        assert sl.done == {"a", "b"}
        sl.append([{"id": "c", "x": 3}])
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "b", "c"]
    with pytest.raises(LavError, match="already"), OutputFolder(tmp_path) as folder:
        log.SampleLog(folder).append([{"id": "a"}])


def test_sample_log_refuses_a_damaged_line_in_the_middle(tmp_path):
    with OutputFolder(tmp_path) as folder:
        folder.write_text(log.SAMPLES_FILE, '{"id": "a"}\nnot json\n{"id": "b"}\n')
        with pytest.raises(LavError, match="line 2 is damaged"):
            log.SampleLog(folder)


def test_settings_of_another_run_are_refused(tmp_path):
    for adapter in ("a", "a"):  # the same settings: resumes
        with OutputFolder(tmp_path / "out") as folder:
            log.check_settings(folder, {"model": "m", "adapter": adapter})
    with (
        pytest.raises(LavError, match="adapter: 'a' there, 'b' now"),
        OutputFolder(tmp_path / "out") as folder,
    ):
        log.check_settings(folder, {"model": "m", "adapter": "b"})
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(LavError, match="notes.txt"):
        OutputFolder(tmp_path / "foreign")
