"""``lav demo-data`` -> ``lav eval --compare-base --save-maps`` on the demo model: the summary holds
the outcome table (base and adapter), the flips by outcome and the calibration, each consistent with
the per-sample records; the report shows them and its gallery is sorted by how far the focus moved.
(In Chromium, the gallery's filters: tests/browser/test_eval_report_in_browser.py.)"""

from __future__ import annotations

import json
import math
import re

import pytest

from lav.eval.layout import safe_id
from lav.eval.taxonomy import OUTCOMES

from .journeys import demo_data, demo_eval

pytestmark = pytest.mark.slow

N = 8


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("journey-outcomes")
    return demo_eval(demo_data(root / "data", N), root / "eval")


def _records(run) -> list[dict]:
    return [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]


def test_the_summary_has_the_outcome_table_and_the_calibration_of_both_models(run):
    summary = json.loads((run / "summary.json").read_text())
    records = _records(run)
    assert len(records) == N
    for who, outs in (("adapter", records), ("base", [r["base"] for r in records])):
        block = summary if who == "adapter" else summary["base"]
        counts = block["outcomes"]["counts"]
        assert list(counts) == list(OUTCOMES) and sum(counts.values()) == N
        for kind in OUTCOMES:
            assert counts[kind] == sum(o["outcome"] == kind for o in outs), (who, kind)
        assert counts["correct"] == block["correct"]
        cal = block["calibration"]
        clicks = [o for o in outs if o["click"] is not None]
        assert cal["n"] == len(clicks) == sum(b["n"] for b in cal["bins"]) and len(cal["bins"]) == 10
        assert all(0 < o["confidence"] <= 1 for o in clicks)
        assert 0 <= cal["ece"] <= 1
    flips = summary["outcome_flips"]
    assert sum(flips["fixed"].values()) == summary["flips"]["fixed"]
    assert sum(flips["broken"].values()) == summary["flips"]["broken"]
    assert sum(flips["pairs"].values()) == N


def test_every_saved_click_carries_its_digits_and_alternatives(run):
    for rec in _records(run):
        if rec["click"] is None:
            continue
        saved = json.loads((run / "samples" / safe_id(rec["id"]) / "result.json").read_text())
        click = saved["click"]
        assert click["confidence"] == rec["confidence"]
        assert math.prod(d["p"] for d in click["digits"]) == pytest.approx(click["confidence"])
        assert 1 <= len(click["alternatives"]) <= 3


def test_the_report_shows_outcomes_calibration_and_a_gallery_sorted_by_focus_shift(run):
    page = (run / "report.html").read_text()
    assert 'id="outcomes"' in page and 'id="calibration"' in page and 'id="outcome-flips"' in page
    assert "expected calibration error" in page
    assert 'id="gallery-filters"' in page and "script-src 'sha256-" in page
    cards = re.findall(r'<figure data-kind="(\w+)"[^>]*data-shift="([\d.]*)"', page)
    flips = [float(s) for k, s in cards if k in ("fixed", "broken") and s]
    assert flips == sorted(flips, reverse=True)
    assert [k for k, _ in cards] == sorted((k for k, _ in cards), key=lambda k: k == "failure")
