"""The evaluation report of a real ``lav eval --compare-base --save-maps`` (demo model, ``lav
demo-data``) in Chromium: the outcome table and the calibration are drawn, the gallery's filters run
under the page's Content-Security-Policy and hide the cards they exclude, and a card's picture opens
the sample's own comparison page. The full-page screenshot is saved beside the checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.e2e.journeys import demo_data, demo_eval

pytestmark = pytest.mark.slow

VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval-report-browser")
    return demo_eval(demo_data(root / "data", 8), root / "eval")


def test_outcome_table_calibration_and_gallery_filters_work_in_chromium(browser, run, tmp_path):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda err: problems.append(str(err)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    try:
        page.goto((run / "report.html").as_uri(), wait_until="load")
        page.wait_for_function("() => Array.from(document.images).every(im => im.complete)", timeout=10_000)
        summary = json.loads((run / "summary.json").read_text())
        table = page.locator("#outcomes + p + table")
        assert table.is_visible()
        first = table.locator("tbody tr").first.locator("td").all_inner_texts()
        assert first[:2] == ["correct", str(summary["outcomes"]["counts"]["correct"])]
        assert page.locator("#calibration").is_visible()

        cards = page.locator("#gallery figure")
        total = cards.count()
        assert total > 0
        # The script ran (the CSP allowed it by hash): it wrote the count.
        assert page.inner_text("#gallery-count") == f"{total} of {total} shown"
        records = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
        group = "group=base"
        page.select_option("#gallery-filters select[name=group]", group)
        expect = [c.get_attribute("data-groups") for c in cards.all()]
        expect = [g for g in expect if group in json.loads(g)]
        visible = [c for c in cards.all() if c.is_visible()]
        assert (
            len(visible) == len(expect)
            and page.inner_text("#gallery-count") == f"{len(expect)} of {total} shown"
        )
        assert any(r["groups"]["group"] == "base" for r in records)
        page.select_option("#gallery-filters select[name=group]", "")
        outcome = cards.first.get_attribute("data-outcome")
        page.select_option("#gallery-filters select[name=outcome]", outcome)
        for c in cards.all():
            wanted = outcome in (c.get_attribute("data-outcome"), c.get_attribute("data-base-outcome"))
            assert c.is_visible() == wanted
        page.select_option("#gallery-filters select[name=outcome]", "")

        shot = tmp_path / "eval-report.png"
        page.screenshot(path=str(shot), full_page=True)
        pixels = np.asarray(Image.open(shot).convert("RGB"))
        assert pixels.shape[0] > VIEWPORT["height"] and pixels.std() > 10

        # A card's picture opens the sample's own comparison page (base, adapter, difference).
        link = cards.first.locator("a:has(img)")
        link.click()
        page.wait_for_load_state("load")
        assert page.locator("#panel-difference").is_visible()
        assert not problems, problems
    finally:
        context.close()
