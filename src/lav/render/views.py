"""From a `Result` to the pictures people look at: overlays (PNG), the HTML report, the notebook view.

Reads a `Result` (also one loaded from disk) as plain data and draws with the rest of `lav.render`;
it imports `lav.result` only for type checking, so `Result.overlay` / `save` / `_repr_html_` can
hand the record here without an import loop. Nothing here imports torch.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .chart import check_charts
from .html import report_html
from .overlay import diff_layer, draw_click, edge_layer, focus_layer, overlay, to_png

if TYPE_CHECKING:
    from ..result import Map, Result

_LAYER = {"edge": edge_layer, "focus": focus_layer}
#: Shown (ticked) at first in the report; the other maps start unticked, since stacked maps of one
#: colour hide each other and the screenshot.
FIRST_MAPS = ("edge", "focus")
#: What the two maps are, one sentence each (the report, the notebook view; the viewer's
#: index.html says the same).
ABOUT = {
    "edge": (
        "Edge map (cyan)",
        "how much attention each patch of the screenshot receives inside the vision encoder (its last "
        "blocks), before the language model reads the instruction.",
    ),
    "focus": (
        "Decision focus (red/yellow)",
        "where the language model's attention goes among the image tokens while it writes the click's "
        "coordinate digits.",
    ),
}
#: Said wherever the shipped demo model's maps are shown (src/lav/demo/README.md).
DEMO_CAVEAT = (
    "Demo model: its decision focus is taught, not emergent. Training pushed the last decoder layer's "
    "attention from the coordinate digits onto the target, so that map shows that lav reads attention "
    "correctly, not how real grounding models look; its edge map is a tiny tower's own attention, not a "
    "real Qwen-VL tower's (src/lav/demo/README.md)."
)
#: Longest side of a picture in the notebook view: a 4K screenshot in three panels per map would
#: otherwise put tens of megabytes into the notebook file.
NOTEBOOK_SIDE = 640


def overlay_image(res: Result, edge: bool = True, focus: bool = True, click: bool = True) -> Image.Image:
    """The screenshot with the edge map (cyan), the decision focus (red/yellow) and the click."""
    # The click as found (not clipped): the renderer marks one outside the image as hollow.
    point = (res.click.x, res.click.y) if click and res.click is not None else None
    return overlay(
        res.image,
        edge=res.edge if edge and "edge" in res.maps else None,
        focus=res.focus if focus and "focus" in res.maps else None,
        click=point,
    )


def map_image(res: Result, name: str, click: bool = True) -> Image.Image:
    """The screenshot with one map ``name`` in its own colours, and the click."""
    m = res.map(name)
    point = (res.click.x, res.click.y) if click and res.click is not None else None
    layers = {"edge": m.values} if m.style == "edge" else {"focus": m.values}
    return overlay(res.image, click=point, **layers)


def diff_image(res: Result, name: str) -> Image.Image:
    """Adapter minus base for map ``name`` (red: adapter more, blue: base more) with both clicks:
    the adapter's solid, the base model's dashed."""
    d = res.diff(name)
    if d is None:
        raise ValueError(f"no difference for map {name!r}: the result has no base run or no such map")
    out = overlay(res.image, diff=d)
    if res.base is not None and res.base.click is not None:
        out = draw_click(out, res.base.click.x, res.base.click.y, dashed=True)
    if res.click is not None:
        out = draw_click(out, res.click.x, res.click.y)
    return out


def unchanged(res: Result, name: str) -> bool:
    """Whether the adapter left map ``name`` exactly as the base model had it (a LoRA that does not
    touch the vision tower leaves the edge map so)."""
    d = res.diff(name)
    return d is not None and not np.any(d)


def is_demo(model: str) -> bool:
    """Whether ``model`` names the demo model that ships with lav (by name or by its folder)."""
    from ..demo.assets import BASE

    if model == "demo":
        return True
    try:
        return Path(model).resolve() == BASE.resolve()
    except (OSError, ValueError):
        return False


def about(res: Result) -> list[list[str]]:
    """[label, sentence] for each of edge and focus this result has (`ABOUT`)."""
    return [list(ABOUT[n]) for n in ABOUT if n in res.maps]


def caveat(res: Result) -> str | None:
    """`DEMO_CAVEAT` when the result is the demo model's, else None."""
    return DEMO_CAVEAT if is_demo(res.model) else None


def _click_payload(res: Result) -> dict[str, Any] | None:
    if res.click is None:
        return None
    return {"x": res.click.x, "y": res.click.y, "note": res.click.warning}


def confidence_text(res: Result) -> str | None:
    """The click's digit confidence in one line (`lav.confidence`), or None when it was not scored."""
    click = res.click
    if click is None or click.confidence is None:
        return None
    digits = ", ".join(f"{d['axis']} {d['token']} {100 * d['p']:.0f}%" for d in click.digits)
    text = f"{100 * click.confidence:.1f}% (digits: {digits})"
    if click.alternatives:
        alts = "; ".join(f"({a['x']:.0f}, {a['y']:.0f}) px {100 * a['p']:.1f}%" for a in click.alternatives)
        text += f"; next most likely clicks: {alts}"
    return text


def _layer(m: Map, size: tuple[int, int]) -> bytes:
    return to_png(_LAYER[m.style](m.values, size))


def _panel(res: Result, panel_id: str, title: str, images: dict[str, bytes]) -> dict[str, Any]:
    layers: dict[str, str] = {"screenshot": "screenshot"}
    for name, m in res.maps.items():
        key = f"{panel_id}-{name}"
        images[key] = _layer(m, res.image_size)
        layers[name] = key
    return {
        "id": panel_id,
        "title": title,
        "response": res.response,
        "click": _click_payload(res),
        "click_note": res.click_error,
        "confidence": confidence_text(res),
        "layers": layers,
    }


def _meta(res: Result) -> list[list[str]]:
    g = res.grid
    rows = [
        ["model", res.model],
        ["family", res.family],
        [
            "image",
            f"{res.image_size[0]}x{res.image_size[1]} px, model saw {res.resized_size[0]}x{res.resized_size[1]}",
        ],
        ["patch grid", f"{g['h']}x{g['w']} patches of {g['patch']} px, merge {g['merge']}"],
    ]
    for name, m in res.maps.items():
        where = "vision blocks" if m.grid == "patch" else "full-attention decoder layers"
        text = f"{where} {list(m.layers)}"
        if m.info.get("windowed_blocks"):
            text += f" (windowed: {m.info['windowed_blocks']})"
        if m.info.get("tokens"):
            text += f", over {m.info['tokens']}"
        rows.append([m.title.lower() if name in ("edge", "focus") else m.title, text])
    rows += [
        ["coordinates", res.coords_convention or "none"],
        [
            "attention backend",
            f"{res.attention_backend}; received attention by {', '.join(res.received_method) or 'none'}",
        ],
        ["timings", ", ".join(f"{k} {v:.2f}s" for k, v in res.timings.items())],
    ]
    if res.adapter:
        rows.insert(1, ["adapter", res.adapter])
    return rows


def payload(res: Result) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The report's payload and images (see `lav.render.report_html`)."""
    images: dict[str, bytes] = {"screenshot": to_png(res.image)}
    title = "with adapter" if res.adapter else "model"
    panels = [_panel(res, "adapter" if res.adapter else "model", title, images)]
    difference = None
    if res.base is not None:
        panels.insert(0, _panel(res.base, "base", "base model (adapter disabled)", images))
        layers: dict[str, str] = {"screenshot": "screenshot"}
        for name in res.maps:
            d = res.diff(name)
            if d is not None and np.any(d):
                images[f"diff-{name}"] = to_png(diff_layer(d, res.image_size))
                layers[name] = f"diff-{name}"
        difference = {
            "title": "difference (adapter minus base)",
            "layers": layers,
            "unchanged": [n for n in res.maps if unchanged(res, n)],
            "clicks": {"adapter": _click_payload(res), "base": _click_payload(res.base)},
        }
    data = {
        "title": f"lav: {res.instruction}",
        "model": res.model,
        "adapter": res.adapter,
        "instruction": res.instruction,
        "response": res.response,
        "image_size": list(res.image_size),
        "maps": [
            {"name": n, "title": m.title, "style": m.style, "shown": n in FIRST_MAPS}
            for n, m in res.maps.items()
        ],
        "about": about(res),
        "caveat": caveat(res),
        "panels": panels,
        "difference": difference,
        "meta": _meta(res),
    }
    charts = check_charts(res)
    if charts:
        data["charts"] = charts
    return data, images


def result_page(res: Result) -> str:
    return report_html(*payload(res))


# ---------------------------------------------------------------------------------------------
# The notebook view: static pictures and inline styles only, so it shows the same in Jupyter,
# VS Code and on GitHub, where a notebook's scripts and stylesheets may not run.

_SWATCH = {
    "edge": "linear-gradient(to right,rgba(0,200,255,0),rgba(0,255,255,.3))",
    "focus": "linear-gradient(to right,rgba(255,0,0,0),rgba(255,180,0,.35))",
    "diff": "linear-gradient(to right,rgba(40,100,230,.4),rgba(40,100,230,0) 50%,rgba(230,40,40,0) 50%,rgba(230,40,40,.4))",
}


def _thumb(img: Image.Image) -> str:
    scale = NOTEBOOK_SIDE / max(img.size)
    if scale < 1:
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.LANCZOS)
    png = base64.b64encode(to_png(img)).decode("ascii")
    return f'<img style="width:100%;height:auto;display:block" src="data:image/png;base64,{png}" alt="">'


def _key(style: str, text: str) -> str:
    swatch = (
        f'<span style="display:inline-block;width:3.5em;height:.8em;border:1px solid #ccc;'
        f'vertical-align:middle;background:{_SWATCH[style]}"></span>'
    )
    return f'<div style="font-size:12px;color:#555">{swatch} {html.escape(text)}</div>'


def _click_text(res: Result) -> str:
    if res.click is None:
        return f"no click: {res.click_error}"
    return f"click ({res.click.x:.0f}, {res.click.y:.0f}) px [{res.click.convention}]"


def _figure(kind: str, title: str, img: Image.Image, caption: str, key: str) -> str:
    return (
        f'<figure data-panel="{kind}" style="margin:0;flex:1 1 0;min-width:180px">'
        f'{_thumb(img)}<figcaption style="font-size:12px"><b>{html.escape(title)}</b> '
        f"{caption}</figcaption>{key}</figure>"
    )


def _map_row(res: Result, name: str) -> str:
    m = res.maps[name]
    low_high = _key(m.style, f"{m.title}: low → high")
    cells = []
    if res.base is not None and name in res.base.maps:
        cells.append(
            _figure(
                "base", "base model", map_image(res.base, name), html.escape(_click_text(res.base)), low_high
            )
        )
    title = "with adapter" if res.adapter else "model"
    cells.append(
        _figure(title.replace(" ", "-"), title, map_image(res, name), html.escape(_click_text(res)), low_high)
    )
    if res.diff(name) is not None:
        if unchanged(res, name):
            key = '<div style="font-size:12px;color:#555" data-unchanged="1">no change: adapter and base maps are identical</div>'
        else:
            key = _key("diff", "blue: base looks more, red: adapter looks more")
        clicks = "solid crosshair: adapter's click; dashed: base model's click"
        cells.append(
            _figure("difference", "difference (adapter minus base)", diff_image(res, name), clicks, key)
        )
    return (
        f'<section data-map="{html.escape(name)}" style="margin:.6em 0">'
        f'<h4 style="margin:.2em 0">{html.escape(m.title)} <code style="font-weight:normal">{html.escape(name)}</code></h4>'
        f'<div style="display:flex;gap:8px;align-items:flex-start">{"".join(cells)}</div></section>'
    )


def notebook_html(res: Result) -> str:
    """The notebook view: one row per map, each base | adapter | difference for a comparison (or the
    model's panel alone), with legends, what the maps are, and the answers."""
    answers = [("answer" if res.base is None else "answer with adapter", res)]
    if res.base is not None:
        answers.append(("answer of the base model", res.base))
    lines = "".join(
        f"<div>{html.escape(label)} <code>{html.escape(r.response)}</code>; {html.escape(_click_text(r))}</div>"
        for label, r in answers
    )
    notes = "".join(
        f'<div style="font-size:12px"><b>{html.escape(label)}</b>: {html.escape(text)}</div>'
        for label, text in about(res)
    )
    warn = caveat(res)
    if warn:
        notes += (
            '<div role="note" style="font-size:12px;border-left:3px solid #b7791f;background:#fffaf0;'
            f'padding:.2em .5em;margin:.3em 0">{html.escape(warn)}</div>'
        )
    rows = "".join(_map_row(res, name) for name in res.maps)
    return (
        f'<div class="lav-result"><p style="margin:.2em 0"><b>{html.escape(res.instruction)}</b></p>'
        f"{lines}{notes}{rows}</div>"
    )


def write_pictures(res: Result, folder) -> None:
    """Write the pictures of ``res`` and report.html into ``folder``.

    overlay.png (edge, focus, click), and for every other map overlay_<map>.png (that map alone);
    for a comparison overlay_base.png / overlay_base_<map>.png and overlay_diff.png /
    overlay_diff_<map>.png (adapter minus base, with both clicks; overlay_diff.png is the focus's).
    """
    overlay_image(res).save(folder / "overlay.png")
    extra = [n for n in res.maps if n not in FIRST_MAPS]
    for name in extra:
        map_image(res, name).save(folder / f"overlay_{name}.png")
    if res.base is not None:
        overlay_image(res.base).save(folder / "overlay_base.png")
        if res.focus_diff is not None:
            diff_image(res, "focus").save(folder / "overlay_diff.png")
        for name in extra:
            if name in res.base.maps:
                map_image(res.base, name).save(folder / f"overlay_base_{name}.png")
                diff_image(res, name).save(folder / f"overlay_diff_{name}.png")
    (folder / "report.html").write_text(result_page(res), encoding="utf-8")
