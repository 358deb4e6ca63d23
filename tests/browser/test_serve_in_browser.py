"""`lav serve` in a real browser: Debian's Chromium driven by Playwright, against a uvicorn server on
127.0.0.1 (a free port) started and stopped here, serving the shipped demo model and a results folder
built from real analyses. Where Chromium or Playwright is missing the tests skip and say how to
install it; under CI (``CI=true``) they fail instead.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 1000}
XSS = "<img src=x onerror=alert(1)>"


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} (CI is set, so the browser tests must run, not skip)", pytrace=False)
    pytest.skip(what)


@pytest.fixture(scope="module")
def chromium(browser):
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        _missing("the serve extra is not installed: pip install -e '.[serve]'")
    return browser


@pytest.fixture(scope="module")
def results_root(tmp_path_factory, worker):
    """An evaluation output made from real demo-model results: samples.jsonl, summary.json, samples/<id>/."""
    from lav.demo import assets
    from lav.eval.layout import safe_id

    root = tmp_path_factory.mktemp("results")
    out = root / "eval-demo"
    records = []
    for n, instruction in enumerate(["Click the purple triangle", "Click the yellow triangle"]):
        res = worker.viz.analyze(
            assets.SCREEN, instruction, compare_base=True, edge_layers="all", focus_layers="all"
        )
        res.save(out / "samples" / safe_id(f"s{n}"))  # lav eval's layout (lav.eval.layout)
        c = res.click
        # The box sits on the adapter's click for the first sample: right with the adapter; the
        # base is scored by the same rule, so a flip here is a real one.
        box = [c.x - 4, c.y - 4, c.x + 4, c.y + 4] if n == 0 and c else [0, 0, 10, 10]

        def inside(click, box=box):
            return click is not None and box[0] <= click.x <= box[2] and box[1] <= click.y <= box[3]

        records.append(
            {
                "id": f"s{n}",
                "instruction": instruction,
                "bbox": box,
                "response": res.response,
                "click": None if c is None else {"x": c.x, "y": c.y},
                "correct": inside(c),
                "groups": {"ui_type": "icon" if n == 0 else "text"},
                "base": {"response": res.base.response, "correct": inside(res.base.click)},
            }
        )
    (out / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (out / "summary.json").write_text(json.dumps({"n": 2, "accuracy": 0.5}))
    assert records[0]["correct"], "the first sample must be right for the adapter"
    if records[0]["base"]["correct"]:
        pytest.skip("the base model clicked the same spot: no flip to open")
    return root


@pytest.fixture(scope="module")
def worker():
    from lav.demo import assets
    from lav.serve.model import ModelWorker

    return ModelWorker.load(
        assets.BASE, assets.ADAPTER, {"device": "cpu"}, {"edge_layers": "all", "focus_layers": "all"}
    )


@pytest.fixture(scope="module")
def server(chromium, worker, results_root):
    from lav.serve.app import create_app
    from tests.integration.serve_helpers import LiveServer

    with LiveServer(create_app(worker, [results_root])) as srv:
        yield srv


class Page:
    def __init__(self, chromium, server) -> None:
        self.server = server
        self.context = chromium.new_context(viewport=VIEWPORT)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def analyse(self, instruction: str, response: str | None = None, compare: bool = True, image=None) -> str:
        from lav.demo import assets

        p = self.page
        p.goto(self.server.url + "/#/analyse")
        p.set_input_files("#file", str(image or assets.SCREEN))
        p.fill("#instruction", instruction)
        if response:
            p.fill("#response", response)
        if compare:
            p.check("#compare-base")
        # Every text the progress line shows, recorded in the page as it changes: polling it from here
        # misses the stages of a job that finishes between two polls on a busy machine.
        p.evaluate(
            """() => {
                const el = document.querySelector('#progress-stage');
                window.__stages = [];
                new MutationObserver(() => window.__stages.push(el.textContent))
                    .observe(el, {childList: true, characterData: true, subtree: true});
            }"""
        )
        p.click("#submit")
        p.wait_for_function("() => location.hash.startsWith('#/result/')", timeout=120_000)
        p.wait_for_selector("#canvas[data-ready=true]", timeout=60_000)
        self.stages = set(p.evaluate("() => window.__stages"))
        return p.evaluate("() => decodeURIComponent(location.hash.slice('#/result/'.length))")

    def canvas(self) -> str:
        return self.page.eval_on_selector("#canvas", "c => c.toDataURL()")

    def settle(self) -> None:
        self.page.wait_for_function("() => document.querySelector('#canvas').dataset.ready === 'true'")
        self.page.wait_for_timeout(150)

    def readout(self) -> dict[str, dict]:
        lines = self.page.eval_on_selector_all(
            "#readout .ro-map",
            "els => els.map(e => [e.dataset.map, +e.dataset.row, +e.dataset.col, +e.dataset.value])",
        )
        return {m: {"row": r, "col": c, "value": v} for m, r, c, v in lines}


@pytest.fixture(scope="module")
def analysed(chromium, server):
    page = Page(chromium, server)
    rid = page.analyse("Click the purple triangle")
    yield page, rid
    page.context.close()


def _npy(server, rid: str, name: str) -> np.ndarray:
    r = httpx.get(f"{server.url}/api/results/{rid}/maps/{name}", timeout=30)
    r.raise_for_status()
    return np.load(io.BytesIO(r.content))


def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return np.zeros_like(a) if hi <= lo else ((a - lo) / (hi - lo)).astype(np.float32)


def _move_to_patch(page, record, grid_rows, grid_cols, row, col):
    """Put the pointer on the centre of patch (row, col) of a grid over the image; returns the image pixel."""
    w, h = record["image_size"]
    x, y = (col + 0.5) * w / grid_cols, (row + 0.5) * h / grid_rows
    box = page.page.locator("#canvas").bounding_box()
    scale = float(page.page.eval_on_selector("#canvas", "c => c.dataset.scale"))
    fit_w, fit_h = w * scale, h * scale
    left = box["x"] + (box["width"] - fit_w) / 2
    top = box["y"] + (box["height"] - fit_h) / 2
    page.page.mouse.move(left + x * scale, top + y * scale)
    return int(x), int(y)


def test_upload_shows_progress_then_the_result(analysed, server):
    page, rid = analysed
    # The engine's stages as the page showed them ("base: ..." in the pass with the adapter off).
    shown = {s.removeprefix("base: ") for s in page.stages}
    assert shown & {"uploading", "preparing", "generating", "maps"} or any("queued" in s for s in shown)
    drawn = page.page.eval_on_selector("#canvas", "c => c.dataset.drawn").split(",")
    assert drawn == ["edge", "focus", "click"]
    meta = page.page.inner_text("[data-meta=instruction]")
    assert meta == "Click the purple triangle"
    assert not page.errors and not page.dialogs


@pytest.mark.parametrize("layer", ["edge", "focus", "focus_x", "focus_y", "click"])
def test_each_layer_toggles_on_the_canvas(analysed, layer):
    page, _ = analysed
    p = page.page
    box = p.locator(f"input[data-layer={layer}]")
    before = page.canvas()
    was = box.is_checked()
    box.set_checked(not was)
    page.settle()
    drawn = p.eval_on_selector("#canvas", "c => c.dataset.drawn").split(",")
    assert (layer in drawn) == (not was)
    assert page.canvas() != before
    box.set_checked(was)
    page.settle()
    assert page.canvas() == before


def test_opacity_fades_only_the_maps(analysed):
    page, _ = analysed
    p = page.page
    full = page.canvas()
    p.locator("#opacity").fill("0")
    page.settle()
    faded = page.canvas()
    assert p.inner_text("#opacity-value") == "0%"
    for name in ("edge", "focus"):
        p.locator(f"input[data-layer={name}]").set_checked(False)
    page.settle()
    assert page.canvas() == faded  # opacity 0 == no maps; the click stays
    for name in ("edge", "focus"):
        p.locator(f"input[data-layer={name}]").set_checked(True)
    p.locator("#opacity").fill("50")
    page.settle()
    assert page.canvas() not in (full, faded)
    p.locator("#opacity").fill("100")
    page.settle()
    assert page.canvas() == full


def test_hover_readout_equals_the_maps_at_that_patch(analysed, server):
    page, rid = analysed
    record = httpx.get(f"{server.url}/api/results/{rid}").json()
    edge, focus = _npy(server, rid, "edge"), _npy(server, rid, "focus")
    for row, col in [(0, 0), (3, 9), (edge.shape[0] - 1, edge.shape[1] - 1)]:
        px = _move_to_patch(page, record, *edge.shape, row, col)
        got = page.readout()
        assert (got["edge"]["row"], got["edge"]["col"]) == (row, col)
        assert got["edge"]["value"] == pytest.approx(float(edge[row, col]), abs=1e-7)
        frow, fcol = row // 2, col // 2
        assert (got["focus"]["row"], got["focus"]["col"]) == (frow, fcol)
        assert got["focus"]["value"] == pytest.approx(float(focus[frow, fcol]), abs=1e-7)
        pixel = page.page.eval_on_selector("#readout .ro-pixel", "e => [+e.dataset.x, +e.dataset.y]")
        assert pixel == pytest.approx(list(px), abs=1)


def test_a_screenshot_over_the_display_size_is_drawn_and_read_in_its_own_pixels(chromium, server, tmp_path):
    # The server keeps and sends a display-size copy; the page maps it onto the original's pixels.
    from lav.demo import assets
    from lav.serve.app import DISPLAY_SIDE

    big = tmp_path / "big.png"
    with Image.open(assets.SCREEN) as im:
        im.convert("RGB").resize((im.width * 20, im.height * 20), Image.Resampling.NEAREST).save(big)
    page = Page(chromium, server)
    try:
        rid = page.analyse("Click the purple triangle", compare=False, image=big)
        record = httpx.get(f"{server.url}/api/results/{rid}").json()
        w, h = record["image_size"]
        shown = Image.open(io.BytesIO(httpx.get(f"{server.url}/api/results/{rid}/image").content))
        assert (w, h) == (im.width * 20, im.height * 20) and max(shown.size) == DISPLAY_SIDE
        edge = _npy(server, rid, "edge")
        scale = float(page.page.eval_on_selector("#canvas", "c => c.dataset.scale"))
        for row, col in [(0, 0), (edge.shape[0] - 1, edge.shape[1] - 1)]:
            px = _move_to_patch(page, record, *edge.shape, row, col)
            got = page.readout()
            assert (got["edge"]["row"], got["edge"]["col"]) == (row, col)
            pixel = page.page.eval_on_selector("#readout .ro-pixel", "e => [+e.dataset.x, +e.dataset.y]")
            assert pixel == pytest.approx(list(px), abs=2 / scale)
        assert page.errors == []
    finally:
        page.context.close()


def test_picking_a_layer_and_a_head_shows_that_map(analysed, server):
    page, rid = analysed
    p = page.page
    record = httpx.get(f"{server.url}/api/results/{rid}").json()
    heads = _npy(server, rid, "focus_heads")
    layers = _npy(server, rid, "focus_layers")
    edge_layers = _npy(server, rid, "edge_layers")
    assert p.locator("#focus-head option").count() == heads.shape[1] + 1
    before = page.canvas()
    p.select_option("#focus-layer", "1")
    p.select_option("#edge-layer", "0")
    page.settle()
    assert page.canvas() != before
    rows, cols = layers.shape[1:]
    _move_to_patch(page, record, rows, cols, 2, 3)
    got = page.readout()
    assert got["focus"]["value"] == pytest.approx(float(_minmax(layers[1])[2, 3]), abs=1e-6)
    er, ec = got["edge"]["row"], got["edge"]["col"]
    assert got["edge"]["value"] == pytest.approx(float(_minmax(edge_layers[0])[er, ec]), abs=1e-6)
    p.select_option("#focus-head", "2")
    page.settle()
    _move_to_patch(page, record, rows, cols, 2, 3)
    assert page.readout()["focus"]["value"] == pytest.approx(float(_minmax(heads[1, 2])[2, 3]), abs=1e-6)
    for select in ("#focus-layer", "#edge-layer", "#focus-head"):
        p.select_option(select, "mean")
    page.settle()
    assert page.canvas() == before


def test_compare_view_shows_base_and_difference(analysed, server):
    page, rid = analysed
    p = page.page
    record = httpx.get(f"{server.url}/api/results/{rid}").json()
    base, diff = _npy(server, rid, "base_focus"), _npy(server, rid, "focus_diff")
    rows, cols = base.shape
    p.check("input[name=source][value=base]")
    page.settle()
    _move_to_patch(page, record, rows, cols, 1, 4)
    assert page.readout()["focus"]["value"] == pytest.approx(float(base[1, 4]), abs=1e-7)
    p.check("input[name=source][value=diff]")
    page.settle()
    _move_to_patch(page, record, rows, cols, 1, 4)
    assert page.readout()["focus"]["value"] == pytest.approx(float(diff[1, 4]), abs=1e-6)
    assert "(adapter - base)" in p.inner_text("#readout")
    page.page.screenshot(path=str(Path(os.environ.get("LAV_SHOTS", "/tmp")) / "lav-serve-diff.png"))
    p.check("input[name=source][value=adapter]")
    page.settle()


def test_zoom_and_pan(analysed):
    page, _ = analysed
    p = page.page
    fit = float(p.eval_on_selector("#canvas", "c => c.dataset.scale"))
    p.click("#zoom-1")
    assert float(p.eval_on_selector("#canvas", "c => c.dataset.scale")) == 1.0
    p.click("#zoom-in")
    assert float(p.eval_on_selector("#canvas", "c => c.dataset.scale")) == pytest.approx(1.5)
    before = page.canvas()
    box = p.locator("#canvas").bounding_box()
    p.mouse.move(box["x"] + 200, box["y"] + 200)
    p.mouse.down()
    p.mouse.move(box["x"] + 260, box["y"] + 230)
    p.mouse.up()
    assert page.canvas() != before
    p.click("#zoom-fit")
    assert float(p.eval_on_selector("#canvas", "c => c.dataset.scale")) == pytest.approx(fit)


def test_browse_an_evaluation_and_open_a_flipped_sample(chromium, server):
    page = Page(chromium, server)
    p = page.page
    try:
        p.goto(server.url + "/#/browse")
        p.click("#evals a")
        p.wait_for_selector("#samples tbody tr")
        assert p.locator("#samples tbody tr").count() == 2
        p.select_option("#filter-outcome", "fixed")
        rows = p.locator("#samples tbody tr")
        assert rows.count() == 1 and rows.first.get_attribute("data-flip") == "fixed"
        p.select_option("#group-filters select", "text")
        assert p.locator("#samples tbody tr").count() == 0
        p.select_option("#group-filters select", "")
        p.click("#samples tbody tr a")
        p.wait_for_selector("#canvas[data-ready=true]")
        assert p.is_visible("#box-toggle")
        assert "box" in p.eval_on_selector("#canvas", "c => c.dataset.drawn").split(",")
        assert p.inner_text("[data-meta=instruction]") == "Click the purple triangle"
        assert not page.errors
    finally:
        page.context.close()


def test_xss_instruction_shows_as_text_and_runs_nothing(chromium, server):
    page = Page(chromium, server)
    try:
        page.analyse(XSS, response="(570, 250)", compare=False)
        p = page.page
        assert p.inner_text("[data-meta=instruction]") == XSS
        assert p.locator("#meta img, #readout img").count() == 0
        p.wait_for_timeout(300)
        assert page.dialogs == [] and not page.errors
    finally:
        page.context.close()


def test_page_talks_only_to_its_server_and_looks_right(analysed, server, tmp_path):
    page, _ = analysed
    # blob: URLs of the server's own origin are the local file's preview, made in the page.
    away = [u for u in page.requests if not u.startswith((server.url + "/", "blob:" + server.url + "/"))]
    assert page.requests and not away, f"requests to other origins: {away}"
    path = tmp_path / "serve.png"
    page.page.screenshot(path=str(path))
    shot = np.asarray(Image.open(path).convert("RGB"))
    assert len(np.unique(shot.reshape(-1, 3), axis=0)) > 500 and shot.std() > 10


# --- more maps: ticked in the form, picked in the view ------------------------------------------------
EXTRA_ALPHA = {"edge": 0.3, "focus": 0.35}


def _colour(style: str, v: float) -> tuple[np.ndarray, float]:
    """The overlay colour of lav.render.overlay / view.js: RGB and alpha of value v in [0,1]."""

    def q8(x: float) -> float:
        return float(np.floor(min(255.0, max(0.0, x)) + 0.5))

    rgb = [0, q8(200 + 55 * v), 255] if style == "edge" else [255, q8(180 * v), 0]
    return np.array(rgb, dtype=float), q8(255 * v * EXTRA_ALPHA[style]) / 255


def _pixel(page, record, rows, cols, row, col) -> np.ndarray:
    """The canvas's RGB at the centre of cell (row, col) of a grid over the image (at fit)."""
    w, h = record["image_size"]
    box = page.page.locator("#canvas").bounding_box()
    scale = float(page.page.eval_on_selector("#canvas", "c => c.dataset.scale"))
    x = (box["width"] - w * scale) / 2 + (col + 0.5) * w / cols * scale
    y = (box["height"] - h * scale) / 2 + (row + 0.5) * h / rows * scale
    rgba = page.page.eval_on_selector(
        "#canvas",
        "(c, [x, y]) => { const d = window.devicePixelRatio || 1;"
        " return Array.from(c.getContext('2d').getImageData(Math.floor(x * d), Math.floor(y * d), 1, 1).data); }",
        [x, y],
    )
    return np.array(rgba[:3], dtype=float)


@pytest.fixture(scope="module")
def more_maps(chromium, server):
    """An analysis with two ticked extra maps: edge_rollout (cyan, patch grid) and focus_relative."""
    from lav.demo import assets

    page = Page(chromium, server)
    p = page.page
    p.goto(server.url + "/#/analyse")
    p.wait_for_selector("#more-maps input[value=edge_rollout]")
    offered = p.eval_on_selector_all("#more-maps input[name=maps]", "els => els.map(e => e.value)")
    p.set_input_files("#file", str(assets.SCREEN))
    p.fill("#instruction", "Click the purple triangle")
    p.check("#compare-base")
    p.check("#more-maps input[value=edge_rollout]")
    p.check("#more-maps input[value=focus_relative]")
    p.click("#submit")
    p.wait_for_function("() => location.hash.startsWith('#/result/')", timeout=120_000)
    p.wait_for_selector("#canvas[data-ready=true]", timeout=60_000)
    rid = p.evaluate("() => decodeURIComponent(location.hash.slice('#/result/'.length))")
    yield page, rid, offered
    page.context.close()


def _drawn_over_bare(page, record, name: str, values: np.ndarray, style: str) -> tuple[int, int]:
    """The extra map ``name`` drawn at its top cell: its colour over the bare pixel; the cell."""
    p = page.page
    row, col = np.unravel_index(int(np.argmax(values)), values.shape)
    p.select_option("#extra-map", "")
    page.settle()
    bare = _pixel(page, record, *values.shape, row, col)
    p.select_option("#extra-map", name)
    page.settle()
    drawn = _pixel(page, record, *values.shape, row, col)
    rgb, alpha = _colour(style, float(values[row, col]))
    assert drawn == pytest.approx(rgb * alpha + bare * (1 - alpha), abs=4)
    return int(row), int(col)


def test_form_offers_the_servers_optional_maps(more_maps):
    _, _, offered = more_maps
    assert {"focus_sink_masked", "focus_relative", "focus_grad", "edge_rollout"} <= set(offered)
    assert "focus_selected" not in offered and "edge" not in offered and "focus" not in offered


def test_ticked_maps_are_offered_by_title_and_drawn_in_their_style(more_maps, server):
    page, rid, _ = more_maps
    p = page.page
    record = httpx.get(f"{server.url}/api/results/{rid}").json()
    extras = list(record["maps"])[2:]
    assert list(record["maps"])[:2] == ["edge", "focus"] and set(extras) == {"edge_rollout", "focus_relative"}
    assert p.is_visible("#extra-map")
    options = p.eval_on_selector_all("#extra-map option", "os => os.map(o => [o.value, o.textContent])")
    assert options == [["", "none"], *([n, record["maps"][n]["title"]] for n in extras)]
    with_edge_focus = page.canvas()
    p.select_option("#extra-map", "edge_rollout")
    page.settle()
    assert p.eval_on_selector("#canvas", "c => c.dataset.drawn").split(",") == [
        "edge",
        "focus",
        "edge_rollout",
        "click",
    ]
    assert page.canvas() != with_edge_focus
    # Alone on the screenshot: cyan on the patch grid, the value the server serves.
    for name in ("edge", "focus", "click"):
        p.locator(f"input[data-layer={name}]").set_checked(False)
    rollout = _npy(server, rid, "edge_rollout")
    assert rollout.shape == tuple(_npy(server, rid, "edge").shape)
    row, col = _drawn_over_bare(page, record, "edge_rollout", rollout, "edge")
    _move_to_patch(page, record, *rollout.shape, row, col)
    got = page.readout()
    assert list(got) == ["edge_rollout"] and (got["edge_rollout"]["row"], got["edge_rollout"]["col"]) == (
        row,
        col,
    )
    assert got["edge_rollout"]["value"] == pytest.approx(float(rollout[row, col]), abs=1e-7)
    assert p.eval_on_selector("#readout .ro-map", "e => e.dataset.style") == "edge"
    # focus_relative: red/yellow on the merged grid.
    relative = _npy(server, rid, "focus_relative")
    assert relative.shape == tuple(_npy(server, rid, "focus").shape)
    assert not np.array_equal(relative, _npy(server, rid, "focus"))
    _drawn_over_bare(page, record, "focus_relative", relative, "focus")
    p.select_option("#extra-map", "focus_relative")
    page.settle()
    _move_to_patch(page, record, *relative.shape, 1, 2)
    got = page.readout()["focus_relative"]
    assert (got["row"], got["col"]) == (1, 2) and got["value"] == pytest.approx(
        float(relative[1, 2]), abs=1e-7
    )
    assert not page.errors


def test_extra_map_shows_base_and_difference(more_maps, server):
    page, rid, _ = more_maps
    p = page.page
    record = httpx.get(f"{server.url}/api/results/{rid}").json()
    p.select_option("#extra-map", "focus_relative")
    base, diff = _npy(server, rid, "base_focus_relative"), _npy(server, rid, "focus_relative_diff")
    p.check("input[name=source][value=base]")
    page.settle()
    _move_to_patch(page, record, *base.shape, 2, 5)
    assert page.readout()["focus_relative"]["value"] == pytest.approx(float(base[2, 5]), abs=1e-7)
    p.check("input[name=source][value=diff]")
    page.settle()
    _move_to_patch(page, record, *diff.shape, 2, 5)
    assert page.readout()["focus_relative"]["value"] == pytest.approx(float(diff[2, 5]), abs=1e-6)
    p.check("input[name=source][value=adapter]")
    page.settle()
    assert not page.errors
