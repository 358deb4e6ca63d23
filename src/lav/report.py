"""From a `Result` to the pictures people look at: overlays (PNG), the HTML report, the notebook view.

Reads a `Result` (also one loaded from disk) and draws with `lav.render`; nothing here imports
torch, and `lav.result` never imports this module at load time.
"""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING, Any

from PIL import Image

from .render import diff_layer, edge_layer, focus_layer, overlay, report_html, to_png

if TYPE_CHECKING:
    from .result import Map, Result

_LAYER = {"edge": edge_layer, "focus": focus_layer}


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


def _click_payload(res: Result) -> dict[str, Any] | None:
    if res.click is None:
        return None
    return {"x": res.click.x, "y": res.click.y, "note": res.click.warning}


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
            if d is not None:
                images[f"diff-{name}"] = to_png(diff_layer(d, res.image_size))
                layers[name] = f"diff-{name}"
        difference = {"title": "difference (adapter minus base)", "layers": layers}
    data = {
        "title": f"lav: {res.instruction}",
        "model": res.model,
        "adapter": res.adapter,
        "instruction": res.instruction,
        "response": res.response,
        "image_size": list(res.image_size),
        "maps": [{"name": n, "title": m.title, "style": m.style} for n, m in res.maps.items()],
        "panels": panels,
        "difference": difference,
        "meta": _meta(res),
    }
    return data, images


def build_report(res: Result) -> str:
    return report_html(*payload(res))


def notebook_html(res: Result) -> str:
    """Compact inline view for Jupyter: the overlay and the click, as one <div>."""
    png = base64.b64encode(to_png(overlay_image(res))).decode()
    click = (
        f"click ({res.click.x:.0f}, {res.click.y:.0f}) px [{res.click.convention}]"
        if res.click is not None
        else f"no click: {res.click_error}"
    )
    names = ", ".join(res.maps)
    return (
        f"<div><p><b>{html.escape(res.instruction)}</b> &rarr; <code>{html.escape(res.response)}</code>"
        f" &mdash; {html.escape(click)} &middot; maps: {html.escape(names)}</p>"
        f'<img style="max-width:100%" src="data:image/png;base64,{png}"/></div>'
    )


def write_pictures(res: Result, folder) -> None:
    """Write overlay.png (and overlay_base.png, overlay_diff.png for a comparison) and report.html."""
    overlay_image(res).save(folder / "overlay.png")
    if res.base is not None:
        overlay_image(res.base).save(folder / "overlay_base.png")
        if res.focus_diff is not None:
            overlay(res.image, diff=res.focus_diff).save(folder / "overlay_diff.png")
    (folder / "report.html").write_text(build_report(res), encoding="utf-8")
