"""From a `Result` to the files and pages people look at (PNG overlays, HTML report, notebook)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .render import diff_layer, edge_layer, focus_layer, overlay, report_html, to_png

if TYPE_CHECKING:
    from .result import Result


def _click_payload(res: Result) -> dict[str, Any] | None:
    if res.click is None:
        return None
    return {"x": res.click.x, "y": res.click.y, "note": res.click.warning}


def _panel(res: Result, panel_id: str, title: str, images: dict[str, bytes]) -> dict[str, Any]:
    size = res.image_size
    images[f"{panel_id}-edge"] = to_png(edge_layer(res.edge, size))
    images[f"{panel_id}-focus"] = to_png(focus_layer(res.focus, size))
    return {
        "id": panel_id,
        "title": title,
        "response": res.response,
        "click": _click_payload(res),
        "click_note": res.click_error,
        "layers": {"screenshot": "screenshot", "edge": f"{panel_id}-edge", "focus": f"{panel_id}-focus"},
    }


def _meta(res: Result) -> list[list[str]]:
    rows = [
        ["model", res.model],
        ["family", res.family],
        [
            "image",
            f"{res.image_size[0]}x{res.image_size[1]} px, model saw {res.resized_size[0]}x{res.resized_size[1]}",
        ],
        ["patch grid", f"{res.grid[1]}x{res.grid[2]} patches of {res.patch} px, merge {res.merge}"],
        [
            "edge map",
            f"vision blocks {list(res.edge_maps.blocks)}"
            + (f" (windowed: {list(res.windowed_blocks)})" if res.windowed_blocks else ""),
        ],
        [
            "decision focus",
            f"full-attention decoder layers {list(res.focus_maps.decoder_layers)}, over {res.focus_tokens}",
        ],
        ["coordinates", res.convention or "none"],
        ["attention backend", f"{res.backend}; received attention by {', '.join(res.method)}"],
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
        size = res.image_size
        images["diff-edge"] = to_png(diff_layer(res.edge_diff, size))
        images["diff-focus"] = to_png(diff_layer(res.focus_diff, size))
        difference = {
            "title": "difference (adapter minus base)",
            "layers": {"screenshot": "screenshot", "edge": "diff-edge", "focus": "diff-focus"},
        }
    data = {
        "title": f"lav: {res.instruction}",
        "model": res.model,
        "adapter": res.adapter,
        "instruction": res.instruction,
        "response": res.response,
        "image_size": list(res.image_size),
        "panels": panels,
        "difference": difference,
        "meta": _meta(res),
    }
    return data, images


def build_report(res: Result) -> str:
    return report_html(*payload(res))


def notebook_html(res: Result) -> str:
    """Compact inline view for Jupyter: the overlay and the click, as one <div>."""
    import base64

    png = base64.b64encode(to_png(res.overlay())).decode()
    click = (
        f"click ({res.click.x:.0f}, {res.click.y:.0f}) px [{res.click.convention}]"
        if res.click is not None
        else f"no click: {res.click_error}"
    )
    return (
        f"<div><p><b>{html.escape(res.instruction)}</b> &rarr; <code>{html.escape(res.response)}</code>"
        f" &mdash; {html.escape(click)}</p>"
        f'<img style="max-width:100%" src="data:image/png;base64,{png}"/></div>'
    )


def write_outputs(res: Result, folder: Path) -> None:
    """Write the picture files into ``folder`` (result.json and maps.npz are written by `Result.save`)."""
    res.overlay().save(folder / "overlay.png")
    if res.base is not None:
        res.base.overlay().save(folder / "overlay_base.png")
        overlay(res.image, diff=res.focus_diff).save(folder / "overlay_diff.png")
    (folder / "report.html").write_text(build_report(res), encoding="utf-8")
