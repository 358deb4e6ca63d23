"""The comparison report in a real browser: Debian's Chromium driven by Playwright, offline.

The page is built end to end by `lav run --compare-base` on a tiny Qwen3-VL checkpoint with a LoRA
adapter, then opened from its file:// URL. ``make install`` installs both browser parts where it can
(Chromium with apt-get as root, Playwright with the ``dev`` extra); where one is missing, conftest.py
skips these tests with the command that installs it, or fails them under CI (``CI=true``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lav.cli import main
from lav.testing import tiny_checkpoint
from tests.e2e.conftest import SIZE, _adapter

pytestmark = pytest.mark.slow

# No GPU, no sandbox (CI runs as root), and none of Chromium's own traffic (updates, sync, QUIC).
RESPONSE = "(500, 250)"
CLICK_1000 = (500, 250)  # Qwen3-VL answers on a 0-1000 scale of the original image
VIEWPORT = {"width": 1280, "height": 900}
PANELS = ("panel-base", "panel-adapter", "panel-difference")

# Whether an element is drawn, by the three ways CSS can hide it (and no box at all).
_SHOWN_JS = """el => {
    const cs = getComputedStyle(el);
    return cs.display !== "none" && cs.visibility !== "hidden" && parseFloat(cs.opacity) > 0
        && el.getClientRects().length > 0;
}"""


@pytest.fixture(scope="session")
def report(tmp_path_factory) -> Path:
    """report.html of `lav run --compare-base` on a tiny Qwen3-VL with a non-zero LoRA adapter."""
    root = tmp_path_factory.mktemp("browser")
    model = tiny_checkpoint("qwen3_vl", root / "qwen3_vl")
    adapter = _adapter(model, root / "lora")
    rng = np.random.default_rng(11)
    img = rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    img[50:90, 200:260] = (230, 30, 30)
    screenshot = root / "screen.png"
    Image.fromarray(img).save(screenshot)
    out = root / "out"
    args = ["run", "--model", model, "--adapter", adapter, "--image", screenshot]
    args += ["--instruction", "Click the red button", "--response", RESPONSE, "--compare-base"]
    assert main([str(a) for a in [*args, "--out", out]]) == 0
    return out / "report.html"


class Opened:
    """The report open in a fresh page, with everything the page said and asked for."""

    def __init__(self, browser, report: Path) -> None:
        self.context = browser.new_context(viewport=VIEWPORT)
        self.page = self.context.new_page()
        self.console: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda msg: self.console.append((msg.type, msg.text)))
        self.page.on("pageerror", lambda err: self.errors.append(str(err)))
        self.page.on("request", lambda req: self.requests.append(req.url))
        self.url = report.as_uri()
        self.page.goto(self.url, wait_until="load")
        self.page.wait_for_function(
            "() => Array.from(document.images).every(im => im.complete)", timeout=10_000
        )

    def all(self, selector: str) -> list:
        return self.page.locator(selector).all()

    def shown(self, selector: str) -> list[bool]:
        return [loc.evaluate(_SHOWN_JS) for loc in self.all(selector)]


@pytest.fixture
def opened(browser, report):
    page = Opened(browser, report)
    yield page
    page.context.close()


def _centre(box: dict) -> tuple[float, float]:
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_report_opens_offline_without_errors(opened):
    errors = [text for kind, text in opened.console if kind == "error"]
    assert not errors, f"console errors: {errors}"
    assert not opened.errors, f"uncaught page errors: {opened.errors}"
    # The listener saw the page itself, so an empty list of others means nothing else was asked for.
    assert opened.url in opened.requests
    away = [url for url in opened.requests if not url.startswith(("file:", "data:"))]
    assert not away, f"the page requested {away}; it must open with no network"


def test_base_adapter_and_difference_panels_are_visible_with_loaded_images(opened):
    for pid in PANELS:
        panel = opened.page.locator(f"#{pid}")
        assert panel.is_visible(), pid
        assert opened.shown(f"#{pid} img.screenshot") == [True], pid
        assert len(opened.all(f"#{pid} img.layer")) == 2, pid
    images = opened.page.evaluate(
        "() => Array.from(document.querySelectorAll('.stack img'))"
        ".map(im => [im.className, im.complete, im.naturalWidth, im.naturalHeight])"
    )
    assert len(images) == 3 * len(PANELS)
    for name, complete, width, height in images:
        assert complete and width > 0 and height > 0, f"{name} did not load ({width}x{height})"


@pytest.mark.parametrize(
    "layer, selector, count",
    [("edge", ".stack img.layer-edge", 3), ("focus", ".stack img.layer-focus", 3), ("click", "svg.click", 4)],
)
def test_layer_switch_hides_and_shows_that_layer_in_every_panel(opened, layer, selector, count):
    others = {".stack img.layer-edge", ".stack img.layer-focus", "svg.click"} - {selector}
    box = opened.page.locator(f"input[data-toggle={layer}]")
    assert opened.shown(selector) == [True] * count
    box.uncheck()
    assert opened.shown(selector) == [False] * count
    for other in others:
        assert all(opened.shown(other)), f"unticking {layer} also hid {other}"
    box.check()
    assert opened.shown(selector) == [True] * count


def test_opacity_slider_sets_the_map_layers_opacity(opened):
    def opacity(selector):
        return [float(loc.evaluate("el => getComputedStyle(el).opacity")) for loc in opened.all(selector)]

    assert opacity(".stack img.layer") == [1.0] * 6
    opened.page.locator("input[data-opacity]").fill("30")
    assert opacity(".stack img.layer") == pytest.approx([0.3] * 6)
    assert opened.page.locator("[data-opacity-value]").inner_text() == "30%"
    # Only the maps fade: the screenshot and the click stay as they were.
    assert opacity("img.screenshot") == [1.0] * 3
    assert opacity("svg.click") == [1.0] * 4  # one per panel, both in the difference
    opened.page.locator("input[data-opacity]").fill("0")
    assert opacity(".stack img.layer") == [0.0] * 6


@pytest.mark.parametrize("width", [1280, 420], ids=["wide", "narrow"])
def test_click_crosshair_sits_at_the_click_position(opened, width):
    opened.page.set_viewport_size({"width": width, "height": VIEWPORT["height"]})
    for pid in ("panel-base", "panel-adapter"):
        img = opened.page.locator(f"#{pid} img.screenshot").bounding_box()
        cross = opened.page.locator(f"#{pid} svg.click").bounding_box()
        # The click in original pixels is CLICK_1000 / 1000 * SIZE; on screen it scales with the image.
        expected = (
            img["x"] + CLICK_1000[0] / 1000 * img["width"],
            img["y"] + CLICK_1000[1] / 1000 * img["height"],
        )
        assert _centre(cross) == pytest.approx(expected, abs=2), pid


def test_pointer_readout_is_in_original_image_pixels(opened):
    img = opened.page.locator("#panel-adapter img.screenshot").bounding_box()
    opened.page.mouse.move(img["x"] + 0.5 * img["width"], img["y"] + 0.25 * img["height"])
    readout = opened.page.locator("#panel-adapter .readout")
    match = re.fullmatch(r"x (\d+), y (\d+) px", readout.inner_text())
    assert match, f"read-out {readout.inner_text()!r}"
    # The pointer moves in whole CSS pixels, about 0.8 original pixels at this scale.
    expected = (CLICK_1000[0] / 1000 * SIZE[0], CLICK_1000[1] / 1000 * SIZE[1])
    assert (int(match[1]), int(match[2])) == pytest.approx(expected, abs=1)
    opened.page.mouse.move(1, 1)
    assert readout.inner_text() == ""


def test_full_page_screenshot_is_not_blank(opened, tmp_path):
    path = tmp_path / "report.png"
    opened.page.screenshot(path=path, full_page=True)
    shot = np.asarray(Image.open(path).convert("RGB"))
    assert shot.shape[1] == VIEWPORT["width"] and shot.shape[0] >= 300
    colours = np.unique(shot.reshape(-1, 3), axis=0)
    assert len(colours) > 1000, f"the page rendered only {len(colours)} colours"
    assert shot.std() > 10
