"""The whole result, looked at in Chromium: the notebook view and the report of a real comparison with
every map (`lav run --compare-base --maps ...` on the shipped demo model, tests/render/demo_run.py).

Each test saves its full-page screenshot beside its checks (``<tmp>/views-*.png``), so the pictures a
person looks at are those the assertions ran on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lav
import lav.render.views as views
from tests.render.demo_run import MAPS, demo_comparison

pytestmark = pytest.mark.slow

VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return demo_comparison(tmp_path_factory.mktemp("views-browser") / "out")


@pytest.fixture(scope="module")
def notebook(run, tmp_path_factory) -> Path:
    """The notebook view as a page: Jupyter puts `_repr_html_` inside its own document the same way."""
    page = tmp_path_factory.mktemp("notebook") / "cell.html"
    body = lav.Result.load(run)._repr_html_()
    page.write_text(f'<!doctype html><html><head><meta charset="utf-8"></head><body>{body}</body></html>')
    return page


def _open(browser, path: Path):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_function("() => Array.from(document.images).every(im => im.complete)", timeout=10_000)
    return context, page, errors


def _screenshot(page, path: Path) -> np.ndarray:
    page.screenshot(path=str(path), full_page=True)
    return np.asarray(Image.open(path).convert("RGB"))


def test_notebook_view_shows_every_map_as_base_adapter_difference(browser, notebook, tmp_path):
    context, page, errors = _open(browser, notebook)
    try:
        sections = page.locator("section[data-map]").all()
        assert [s.get_attribute("data-map") for s in sections] == list(MAPS)
        for s in sections:
            figures = s.locator("figure").all()
            assert [f.get_attribute("data-panel") for f in figures] == ["base", "with-adapter", "difference"]
            for f in figures:
                img = f.locator("img")
                assert img.is_visible()
                size = img.evaluate("im => [im.naturalWidth, im.clientWidth, im.clientHeight]")
                assert size[0] > 0 and size[1] > 150 and size[2] > 100, size
            # Side by side, left to right.
            xs = [f.bounding_box()["x"] for f in figures]
            assert xs == sorted(xs) and len(set(xs)) == 3
        text = page.locator("body").inner_text()
        assert views.DEMO_CAVEAT in " ".join(text.split())
        edge = page.locator('section[data-map="edge"] figure[data-panel="difference"]').inner_text()
        assert "no change" in edge
        shot = _screenshot(page, tmp_path / "views-notebook.png")
        assert shot.shape[0] > 6 * 200 and len(np.unique(shot.reshape(-1, 3), axis=0)) > 500
        assert not errors
    finally:
        context.close()


def test_report_shows_both_clicks_in_the_difference_and_every_map_on_request(browser, run, tmp_path):
    context, page, errors = _open(browser, run / "report.html")
    try:
        diff = page.locator("#panel-difference")
        for who in ("adapter", "base"):
            assert diff.locator(f'svg.click[data-who="{who}"]').is_visible(), who
        key = diff.locator(".click-key").inner_text()
        assert "solid: adapter click" in key and "dashed: base click" in key
        assert diff.locator('[data-unchanged="edge"]').is_visible()
        about = " ".join(page.locator(".about").inner_text().split())
        for label, sentence in views.ABOUT.values():
            assert f"{label}: {sentence}" in about
        assert page.locator(".caveat").is_visible()
        # An extra map starts hidden and shows in every panel when ticked.
        res = lav.Result.load(run)
        unchanged = {n for n in MAPS if np.array_equal(res.maps[n].values, res.base.maps[n].values)}
        assert unchanged == {"edge", "edge_rollout"}  # the demo's LoRA leaves the vision tower alone
        for name in MAPS[2:]:
            layers = page.locator(f".stack img.layer-{name}")
            assert not any(layer.is_visible() for layer in layers.all()), name
            page.locator(f'input[data-toggle="{name}"]').check()
            # Base, adapter and the difference; an exactly unchanged map has nothing to draw there.
            assert sum(layer.is_visible() for layer in layers.all()) == 3 - (name in unchanged), name
            page.locator(f'input[data-toggle="{name}"]').uncheck()
        _screenshot(page, tmp_path / "views-report.png")
        page.locator('input[data-toggle="focus_relative"]').check()
        page.locator('input[data-toggle="focus"]').uncheck()
        _screenshot(page, tmp_path / "views-report-relative.png")
        assert not errors
    finally:
        context.close()
