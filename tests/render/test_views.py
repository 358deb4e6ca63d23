"""Every view shows the whole result: the notebook view, the pictures and the report of a real
comparison with every map (`lav run --compare-base --maps ...` on the shipped demo model)."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lav
import lav.render.views as views
from lav.demo.screens import COLOURS
from lav.render import CLICK_GREEN, CLICK_MARKER
from tests.render.demo_run import MAPS, demo_comparison

#: The top colour (v = 1) of each map style and its opacity there (README, lav.render.overlay).
TOP = {"edge": ((0, 255, 255), 0.3), "focus": ((255, 180, 0), 0.35)}
STATIC = Path(lav.__file__).parent / "serve" / "static"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return demo_comparison(tmp_path_factory.mktemp("views") / "out")


@pytest.fixture(scope="module")
def res(run) -> lav.Result:
    return lav.Result.load(run)


class _Tags(HTMLParser):
    """Every start tag with its attributes, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(text: str) -> _Tags:
    p = _Tags()
    p.feed(text)
    return p


def _text(html: str) -> str:
    return " ".join("".join(_parse(html).text).split())


def test_the_run_has_every_map_on_both_sides(res):
    assert list(res.maps) == list(MAPS) and list(res.base.maps) == list(MAPS)


# --- the notebook view ----------------------------------------------------------------------------


def test_notebook_view_of_a_comparison_shows_base_adapter_and_difference_for_every_map(res):
    page = res._repr_html_()
    sections = re.split(r'(?=<section data-map=")', page)[1:]
    assert [re.match(r'<section data-map="([^"]+)"', s).group(1) for s in sections] == list(MAPS)
    for section in sections:
        panels = [a["data-panel"] for t, a in _parse(section).tags if t == "figure"]
        assert panels == ["base", "with-adapter", "difference"]
        assert section.count("<img") == 3
        text = _text(section)
        assert "low → high" in text  # the maps' legend
        assert "solid crosshair: adapter's click; dashed: base model's click" in text


def test_notebook_view_of_a_comparison_differs_from_the_adapter_alone(res):
    alone = dataclasses.replace(res, base=None)
    assert res._repr_html_() != alone._repr_html_()
    assert "difference" not in " ".join(
        a.get("data-panel") or "" for _, a in _parse(alone._repr_html_()).tags
    )


def test_notebook_view_names_both_answers_and_says_what_the_maps_are(res):
    text = _text(res._repr_html_())
    assert res.response in text and res.base.response in text
    for label, sentence in views.ABOUT.values():
        assert f"{label}: {sentence}" in text


# --- the difference ---------------------------------------------------------------------------------


def test_a_lora_outside_the_vision_tower_leaves_the_edge_map_unchanged_and_the_views_say_so(res, run):
    # The demo adapter adapts decoder layers only: the tower's maps are the base model's, bit for bit.
    for name in ("edge", "edge_rollout"):
        assert np.array_equal(res.maps[name].values, res.base.maps[name].values)
    report = (run / "report.html").read_text()
    diff = report[report.index('id="panel-difference"') :]
    assert "Edge map: no change (adapter and base maps are identical)" in _text(diff)
    assert "Edge map: blue base" not in _text(diff)
    assert "Decision focus: blue base &gt; adapter" in diff  # a changed map keeps its colour scale
    nb = res._repr_html_()
    edge = nb[nb.index('data-map="edge"') : nb.index('data-map="focus"')]
    assert "no change: adapter and base maps are identical" in edge


def test_the_difference_panel_draws_both_clicks_with_a_key(res, run):
    report = (run / "report.html").read_text()
    diff = report[report.index('id="panel-difference"') :]
    svgs = {a.get("data-who"): a["class"] for t, a in _parse(diff).tags if t == "svg" and a.get("data-who")}
    assert svgs == {"adapter": "click", "base": "click dashed"}
    assert "solid: adapter click" in _text(diff) and "dashed: base click" in _text(diff)
    # In the picture, both centre dots are drawn: the adapter's and the base model's.
    diff_png = np.asarray(Image.open(run / "overlay_diff.png").convert("RGB"))
    for click in (res.click, res.base.click):
        assert tuple(diff_png[round(click.y), round(click.x)]) == CLICK_MARKER


# --- pictures --------------------------------------------------------------------------------------


def _tint(style: str, v: float, under: np.ndarray) -> np.ndarray:
    """The documented colour of a map cell of value v over the screenshot pixel ``under``
    (README's Outputs: edge rgba(0, 200+55v, 255, 0.3v), focus rgba(255, 180v, 0, 0.35v))."""
    rgb, alpha = ((0, 200 + 55 * v, 255), 0.3) if style == "edge" else ((255, 180 * v, 0), 0.35)
    a = np.floor(255 * v * alpha + 0.5) / 255
    return under * (1 - a) + np.array(rgb) * a


def test_every_extra_map_gets_its_own_pictures(res, run):
    shot = np.asarray(res.image.convert("RGB")).astype(float)
    h, w = shot.shape[:2]
    for name in MAPS[2:]:
        for prefix, r in (("overlay_", res), ("overlay_base_", res.base)):
            img = np.asarray(Image.open(run / f"{prefix}{name}.png").convert("RGB")).astype(float)
            m = r.maps[name]
            gh, gw = m.values.shape
            # The cells where the map is highest and lowest have its colours; the pixel tested is a
            # cell's corner, off the crosshair's axis-aligned arms when the click is in that cell.
            order = np.argsort(m.values, axis=None)
            for k in (order[-1], order[0]):
                i, j = divmod(int(k), gw)
                y, x = int(np.ceil(i * h / gh)) + 1, int(np.ceil(j * w / gw)) + 1
                expected = _tint(m.style, float(m.values[i, j]), shot[y, x])
                assert np.abs(img[y, x] - expected).max() <= 1.5, (prefix, name, img[y, x], expected)
        assert (run / f"overlay_diff_{name}.png").is_file()


# --- what the maps are, and the demo's caveat -------------------------------------------------------


def test_the_report_says_what_the_maps_are_and_the_demo_caveat(res, run):
    text = _text((run / "report.html").read_text())
    for label, sentence in views.ABOUT.values():
        assert f"{label}: {sentence}" in text
    assert views.DEMO_CAVEAT in text
    assert views.DEMO_CAVEAT in _text(res._repr_html_())


def test_another_model_gets_no_demo_caveat(res):
    other = dataclasses.replace(res, model="Qwen/Qwen3-VL-2B-Instruct")
    assert views.DEMO_CAVEAT not in _text(other.report_html()) and views.DEMO_CAVEAT not in _text(
        other._repr_html_()
    )


def test_the_viewer_says_what_the_maps_are():
    text = _text((STATIC / "index.html").read_text())
    for label, sentence in views.ABOUT.values():
        assert f"{label}: {sentence}" in text


def test_extra_maps_start_unticked_in_the_report(run):
    tags = _parse((run / "report.html").read_text()).tags
    boxes = {a["data-toggle"]: a for t, a in tags if t == "input" and "data-toggle" in a}
    assert {n for n, a in boxes.items() if "checked" in a} == {"edge", "focus", "click"}
    assert {n for n, a in boxes.items() if "disabled" in a} == set()


# --- opacity ---------------------------------------------------------------------------------------


def _shape_masks(image: Image.Image) -> dict[str, np.ndarray]:
    """Pixels of the screenshot drawn in each of the demo's colours (its shapes)."""
    img = np.asarray(image.convert("RGB")).astype(float)
    out = {}
    for name, rgb in COLOURS.items():
        mask = np.sqrt(((img - np.array(rgb, float)) ** 2).sum(-1)) < 30
        if mask.sum() > 20:
            out[name] = mask
    return out


def test_every_shape_keeps_its_colour_under_the_default_opacity(res, run):
    """Each shape of the demo screen still reads as its own colour (the nearest of the demo's six
    colours, pixel by pixel) in every picture lav writes: at the seed's opacity the purple target
    under its focus peak read as orange."""
    masks = _shape_masks(res.image)
    assert "purple" in masks and len(masks) >= 3
    names = list(COLOURS)
    palette = np.array([COLOURS[c] for c in names], float)
    pictures = sorted(run.glob("overlay*.png"))
    assert len(pictures) == 3 + 3 * len(MAPS[2:])
    for path in pictures:
        img = np.asarray(Image.open(path).convert("RGB")).astype(float)
        # The crosshairs sit on the shapes they point at; their own pixels are not the shape's.
        drawn = np.isin(
            img.view([("", float)] * 3)[..., 0],
            np.array([CLICK_GREEN, CLICK_MARKER], float).view([("", float)] * 3)[..., 0],
        )
        for colour, mask in masks.items():
            px = img[mask & ~drawn]
            nearest = np.argmin(((px[:, None] - palette[None]) ** 2).sum(-1), axis=1)
            share = float((nearest == names.index(colour)).mean())
            assert share >= 0.9, f"{path.name}: only {share:.0%} of the {colour} shape reads as {colour}"
