"""The HTML report: parses, opens offline, escapes user text, and embeds JSON that round-trips."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from lav.render import RenderError, diff_layer, edge_layer, focus_layer, report_html, to_png

SIZE = (63, 41)
HOSTILE = "</script><script>alert(1)</script>"


class _Collect(HTMLParser):
    """Start tags with their attributes, the text of each <script>, and every id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._in_script: dict[str, str | None] | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "script":
            self._in_script = attrs
            self.scripts.append((attrs, ""))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None

    def handle_data(self, data):
        if self._in_script is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)
        else:
            self.text.append(data)

    def ids(self) -> list[str]:
        return [a["id"] for _, a in self.tags if a.get("id")]


def _parse(page: str) -> _Collect:
    parser = _Collect()
    parser.feed(page)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def images() -> dict[str, bytes]:
    shot = Image.new("RGB", SIZE, (200, 200, 200))
    edge = np.random.default_rng(0).random((4, 6))
    return {
        "shot": to_png(shot),
        "edge_a": to_png(edge_layer(edge, SIZE)),
        "focus_a": to_png(focus_layer(edge[:2, :3], SIZE)),
        "edge_b": to_png(edge_layer(edge[::-1], SIZE)),
        "edge_d": to_png(diff_layer(edge - edge[::-1], SIZE)),
    }


def _payload(instruction: str = "Click the Save button", **extra) -> dict:
    payload = {
        "title": "Where did it look?",
        "model": "Qwen/Qwen3-VL-2B-Instruct",
        "adapter": "runs/lora-7",
        "instruction": instruction,
        "response": "click(512, 300)",
        "image_size": list(SIZE),
        "panels": [
            {
                "id": "base",
                "title": "Base model",
                "response": "I cannot find it",
                "click": None,
                "click_note": "no coordinates in the answer",
                "layers": {"screenshot": "shot", "edge": "edge_b", "focus": None},
            },
            {
                "id": "adapter",
                "title": "With adapter",
                "response": "click(512, 300)",
                "click": {"x": 32.3, "y": 12.0, "note": "0-1000 relative"},
                "layers": {"screenshot": "shot", "edge": "edge_a", "focus": "focus_a"},
            },
        ],
        "difference": {"title": "Adapter minus base", "layers": {"screenshot": "shot", "edge": "edge_d"}},
        "meta": [["vision blocks", [22, 23]], ["convention", "qwen3 relative 0-1000"], ["time (s)", 1.25]],
    }
    payload.update(extra)
    return payload


def test_report_parses_and_holds_every_panel_and_the_difference(images):
    page = report_html(_payload(), images)
    parsed = _parse(page)
    ids = parsed.ids()
    assert {"panel-base", "panel-adapter", "panel-difference"} <= set(ids)
    assert len(ids) == len(set(ids))
    panels = [a["data-panel"] for t, a in parsed.tags if t == "section" and "data-panel" in a]
    assert panels == ["base", "adapter", "difference"]


def test_report_without_difference_has_no_difference_panel(images):
    payload = _payload(difference=None)
    payload["panels"] = payload["panels"][1:]
    page = report_html(payload, images)
    assert 'id="panel-adapter"' in page
    assert "panel-difference" not in page


def test_report_references_nothing_outside_the_page(images):
    page = report_html(_payload(), images)
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    for tag, attrs in _parse(page).tags:
        for name in ("src", "href", "xlink:href", "action", "poster"):
            value = attrs.get(name)
            assert value is None or value.startswith("data:"), (tag, name, value[:40])
        assert not (tag == "link" and attrs.get("rel") == "stylesheet")


def test_report_has_one_iife_script_and_one_json_block(images):
    scripts = _parse(report_html(_payload(), images)).scripts
    assert [a.get("type") for a, _ in scripts] == ["application/json", None]
    code = scripts[1][1].strip()
    body = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith("//"))
    assert body.startswith("(function ()") and body.endswith("})();")


def test_hostile_instruction_is_escaped_in_html_and_json(images):
    page = report_html(_payload(instruction=HOSTILE, title=HOSTILE), images)
    assert "<script>alert(1)" not in page
    parsed = _parse(page)
    assert len(parsed.scripts) == 2
    assert HOSTILE in "".join(parsed.text)  # shown to the reader as text
    assert json.loads(parsed.scripts[0][1])["instruction"] == HOSTILE


def test_embedded_json_round_trips(images):
    payload = _payload(instruction="a < b & c > d \u2028 «ünïcode»")
    parsed = _parse(report_html(payload, images))
    data = json.loads(parsed.scripts[0][1])
    assert data == json.loads(json.dumps(payload))
    assert "<" not in parsed.scripts[0][1]


def test_click_svg_is_placed_in_percent_of_the_image(images):
    tags = _parse(report_html(_payload(), images)).tags
    svgs = [a for t, a in tags if t == "svg" and a.get("data-layer") == "click"]
    assert len(svgs) == 1
    left, top = (float(v) for v in re.findall(r"([\d.]+)%", svgs[0]["style"]))
    assert left == pytest.approx(100 * 32.3 / SIZE[0], abs=1e-3)
    assert top == pytest.approx(100 * 12.0 / SIZE[1], abs=1e-3)


def test_controls_switch_layers_and_opacity(images):
    tags = _parse(report_html(_payload(), images)).tags
    toggles = {a["data-toggle"]: a for t, a in tags if t == "input" and "data-toggle" in a}
    assert set(toggles) == {"edge", "focus", "click"}
    assert all("checked" in a for a in toggles.values())
    assert any(t == "input" and a.get("type") == "range" and "data-opacity" in a for t, a in tags)


def test_layer_no_panel_has_is_disabled(images):
    payload = _payload(difference=None)
    for panel in payload["panels"]:
        panel["layers"]["focus"] = None
        panel["click"] = None
    tags = _parse(report_html(payload, images)).tags
    toggles = {a["data-toggle"]: a for t, a in tags if t == "input" and "data-toggle" in a}
    assert "disabled" in toggles["focus"] and "disabled" in toggles["click"]
    assert "checked" in toggles["edge"]


def test_click_outside_the_image_is_hollow_and_clipped(images):
    payload = _payload()
    payload["panels"][1]["click"] = {"x": -5.0, "y": 500.0, "note": None}
    svg = next(
        a
        for t, a in _parse(report_html(payload, images)).tags
        if t == "svg" and a.get("data-layer") == "click"
    )
    assert "hollow" in svg["class"]
    assert svg["style"] == "left:0.0000%;top:100.0000%"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda p: p["panels"][0]["layers"].update(edge="missing"), "not a key of images"),
        (lambda p: p["panels"][1].update(id="base"), "repeat"),
        (lambda p: p["panels"][0].update(id="bad id"), "panel id"),
        (lambda p: p["panels"][0].update(id="difference"), "panel id"),
        (lambda p: p.pop("instruction"), "instruction"),
        (lambda p: p.update(panels=[]), "empty"),
        (lambda p: p["panels"][1].update(click={"x": float("nan"), "y": 1.0}), "finite"),
    ],
)
def test_malformed_payload_is_refused_with_the_reason(images, change, match):
    payload = _payload()
    change(payload)
    with pytest.raises(RenderError, match=match):
        report_html(payload, images)


def test_layer_of_another_size_than_its_screenshot_is_refused(images):
    wrong = dict(images, edge_a=to_png(edge_layer(np.ones((2, 2)), (SIZE[0] + 1, SIZE[1]))))
    with pytest.raises(RenderError, match="screenshot's size"):
        report_html(_payload(), wrong)


def test_content_security_policy_allows_exactly_the_inline_script(images):
    page = report_html(_payload(), images)
    parsed = _parse(page)
    csp = next(a["content"] for t, a in parsed.tags if t == "meta" and a.get("http-equiv"))
    assert "default-src 'none'" in csp and "img-src data:" in csp
    code = parsed.scripts[1][1]
    digest = base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode("ascii")
    assert f"'sha256-{digest}'" in csp


def test_missing_panel_response_falls_back_to_the_run_response_but_empty_does_not(images):
    payload = _payload(difference=None)
    payload["panels"][0].pop("response")
    payload["panels"][1]["response"] = ""
    parsed = _parse(report_html(payload, images))
    text = "".join(parsed.text)
    assert text.count(payload["response"]) == 1
