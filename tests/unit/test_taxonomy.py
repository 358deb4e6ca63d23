"""The error taxonomy of `lav eval` on hand-made samples (each outcome once), the focus verdict
``looked_right`` on a hand-made result, the summary's outcome tables and the calibration, each
against numbers worked out by hand here."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lav import Map, Result
from lav.coords import Click
from lav.eval.calibration import calibration
from lav.eval.records import error_record, record
from lav.eval.samples import Sample
from lav.eval.stats import summarize
from lav.eval.taxonomy import OUTCOMES, box_distance, classify, other_elements, outcome_flips

pytestmark = pytest.mark.unit

SIZE = (200, 100)  # stored image (width, height)
IMG = Path("/nowhere/screen.png")
# The target: a 20 x 10 box; one box size around it is 20 px (its longer side).
TARGET = Sample("t", IMG, "Click Save", "box", (100.0, 40.0, 120.0, 50.0))
# Other annotated elements of the same screenshot: `OTHER` 40 px left of the target (a click in it is
# farther than one box size), `NEAR_OTHER` below-left of it, within one box size.
OTHER = Sample("o", IMG, "Click Open", "box", (40.0, 40.0, 60.0, 50.0))
NEAR_OTHER = Sample("n", IMG, "Click Help", "box", (85.0, 60.0, 95.0, 70.0))
NEGATIVE = Sample("neg", IMG, "Click the purple star", "negative", None)


def _classify(sample, x, y, refused=False, correct=False, others=()):
    return classify(sample, x, y, refused=refused, correct=correct, size=SIZE, others=others)


def test_each_outcome_on_a_hand_made_sample():
    cases = {
        "correct": _classify(TARGET, 110, 45, correct=True),
        # 15 px right of the box's right edge (x2 = 120): within one box size (20 px).
        "near_miss": _classify(TARGET, 135, 45),
        # inside another annotated element of the same screenshot.
        "wrong_element": _classify(TARGET, 50, 45, others=(OTHER,)),
        "off_image": _classify(TARGET, 230, 45),
        "wrong_format": _classify(TARGET, None, None),
        "refused": _classify(TARGET, None, None, refused=True),
    }
    assert cases == {k: k for k in cases}
    assert error_record(TARGET, "image missing")["outcome"] == "error"
    assert set(cases) | {"error"} == set(OUTCOMES)


def test_near_miss_ends_at_one_box_size_and_another_element_wins_over_near():
    # Distance from (110, 71) to the box (y2 = 50) is 21 > 20: far; (110, 70) is exactly 20: near.
    assert box_distance(110, 70, TARGET.box) == 20.0
    assert _classify(TARGET, 110, 70) == "near_miss"
    assert _classify(TARGET, 110, 71) == "wrong_element"
    # A diagonal miss: (130, 60) is hypot(10, 10) = 14.1 px from the corner (120, 50).
    assert _classify(TARGET, 130, 60) == "near_miss"
    # Near the target but inside another element's box: it clicked that element.
    assert _classify(TARGET, 90, 65) == "near_miss"
    assert _classify(TARGET, 90, 65, others=(NEAR_OTHER,)) == "wrong_element"


def test_a_click_where_the_target_is_absent_is_a_wrong_element_and_a_refusal_is_right():
    assert _classify(NEGATIVE, 20, 20) == "wrong_element"
    assert _classify(NEGATIVE, None, None, refused=True, correct=True) == "correct"


def test_a_box_annotated_at_another_size_is_scaled_to_the_stored_image():
    # Annotated on a 400 x 200 screenshot stored at 200 x 100: the box is (50, 20, 60, 25) stored,
    # one box size is 10 px there.
    big = Sample(
        "b", IMG, "x", "box", (100.0, 40.0, 120.0, 50.0), image_size=(400, 200), size_rule="annotated"
    )
    assert _classify(big, 68, 22) == "near_miss"  # 8 px right of x2 = 60
    assert _classify(big, 72, 22) == "wrong_element"  # 12 px


def test_other_elements_are_the_other_samples_of_the_same_screenshot():
    elsewhere = Sample("e", Path("/nowhere/other.png"), "x", "box", (0.0, 0.0, 5.0, 5.0))
    found = other_elements([TARGET, OTHER, elsewhere])
    assert [s.id for s in found["t"]] == ["o"] and found["e"] == ()


def _result(focus: np.ndarray, click: tuple[float, float] | None, confidence: float | None = None) -> Result:
    image = Image.new("RGB", SIZE)
    c = None
    if click is not None:
        c = Click(click[0], click[1], (0.0, 0.0), "point", "relative-1000", None, True, True, None)
        c = replace(c, confidence=confidence)
    return Result(
        model="m",
        adapter=None,
        adapter_enabled=False,
        family="qwen3_vl",
        instruction="Click Save",
        response="(550, 450)",
        forced_response=True,
        image=image,
        resized_size=(160, 80),
        grid={"t": 1, "h": 10, "w": 20, "merge": 2, "patch": 8},
        click=c,
        click_error=None if c else "no numbers",
        coords_convention="relative-1000",
        answer_tokens=[],
        attention_backend="sdpa",
        received_method=[],
        timings={},
        maps={
            "focus": Map(
                "focus",
                focus.astype(np.float32),
                "merged",
                "focus",
                "Decision focus",
                (0,),
                {"focus_layers": focus[None].astype(np.float32)},
            )
        },
    )


def test_looked_right_reads_the_focus_top_cell_in_original_pixels():
    # A 5 x 10 merged grid over 200 x 100 px: cells of 20 x 20 px. The cell (row 2, col 5) spans
    # x 100-120, y 40-60: its centre (110, 50) lies on the target's bottom edge (edges count).
    focus = np.zeros((5, 10))
    focus[2, 5] = 1.0
    rec = record(TARGET, _result(focus, (135.0, 45.0), 0.25))
    assert rec["outcome"] == "near_miss" and rec["looked_right"] is True
    assert rec["focus_peak"] == [110.0, 50.0] and rec["confidence"] == 0.25
    # The cell's area inside the box: x 100-120 (all), y 40-50 (half): mass 0.5.
    assert rec["focus_mass"] == pytest.approx(0.5)
    focus = np.zeros((5, 10))
    focus[0, 0] = 1.0
    rec = record(TARGET, _result(focus, (135.0, 45.0)))
    assert rec["looked_right"] is False and rec["focus_peak"] == [10.0, 10.0]
    assert record(NEGATIVE, _result(focus, (20.0, 20.0)))["looked_right"] is None


def test_the_summary_counts_outcomes_flips_by_outcome_and_the_focus_verdict():
    def rec(i, outcome, correct, looked, base_outcome, base_correct):
        return {
            "id": str(i),
            "error": None,
            "correct": correct,
            "outcome": outcome,
            "looked_right": looked,
            "confidence": None,
            "base": {"correct": base_correct, "outcome": base_outcome, "looked_right": None},
        }

    records = [
        rec(0, "correct", True, True, "near_miss", False),
        rec(1, "correct", True, True, "near_miss", False),
        rec(2, "near_miss", False, True, "correct", True),
        rec(3, "wrong_element", False, False, "wrong_element", False),
        rec(4, "correct", True, True, "correct", True),
    ]
    s = summarize(records)
    t = s["outcomes"]
    assert t["counts"] == {"correct": 3, "near_miss": 1, "wrong_element": 1} | {
        k: 0 for k in OUTCOMES if k not in ("correct", "near_miss", "wrong_element")
    }
    assert t["share"]["correct"] == 3 / 5
    assert t["clicked_wrong"] == {"looked_right": 1, "looked_wrong": 1}
    assert s["base"]["outcomes"]["counts"]["near_miss"] == 2
    assert s["outcome_flips"]["fixed"] == {"near_miss": 2}
    assert s["outcome_flips"]["broken"] == {"near_miss": 1}
    assert s["outcome_flips"]["pairs"]["near_miss -> correct"] == 2
    assert outcome_flips([("error", "correct")])["fixed"] == {"error": 1}


def test_calibration_bins_and_expected_calibration_error_by_hand():
    outs = [
        {"confidence": 0.05, "correct": False},
        {"confidence": 0.15, "correct": True},
        {"confidence": 0.95, "correct": True},
        {"confidence": 0.85, "correct": True},
        {"confidence": 1.0, "correct": False},  # the last bin is closed
        {"confidence": None, "correct": False},  # no click: left out
    ]
    c = calibration(outs)
    assert c["n"] == 5
    bins = {round(b["low"], 1): b for b in c["bins"] if b["n"]}
    assert set(bins) == {0.0, 0.1, 0.8, 0.9}
    assert bins[0.9]["n"] == 2 and bins[0.9]["accuracy"] == 0.5
    assert bins[0.9]["confidence"] == pytest.approx(0.975)
    # ECE = 1/5 |0 - .05| + 1/5 |1 - .15| + 1/5 |1 - .85| + 2/5 |.5 - .975|
    expected = (0.05 + 0.85 + 0.15) / 5 + 2 / 5 * 0.475
    assert math.isclose(c["ece"], expected)
    assert calibration([{"confidence": None, "correct": True}])["ece"] is None
