"""The evaluation's ``report.html``: one self-contained page from the summary and the records.

Opens from disk with no network: no script at all, CSS inline, pictures as data URIs, and a
Content-Security-Policy that forbids loading anything. Tables (accuracy, groups, flips, the
coordinate check, heads), per-layer curves as inline SVG, and a gallery of flips and failures from
the thumbnails written during the run (`write_thumbnail`), each linking to the sample's result
folder when ``--save-maps`` kept it. Torch-free.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from ..render import overlay, to_png
from .records import safe_id

#: Most thumbnails the gallery embeds (flips first, then failures), to keep the page light.
GALLERY_MAX = 60
THUMB_WIDTH = 240
BASE_CLICK = (255, 140, 0)
BOX_COLOUR = (40, 110, 255)

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:20px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
table{border-collapse:collapse;background:#fff;margin:6px 0}
th,td{border:1px solid #d6d9de;padding:4px 8px;text-align:right}th{background:#eef0f3}
td:first-child,th:first-child{text-align:left}
.note{background:#fff4d6;border:1px solid #e9c46a;padding:6px 10px;margin:8px 0}
.gallery{display:flex;flex-wrap:wrap;gap:12px}
figure{background:#fff;border:1px solid #d6d9de;margin:0;padding:6px;width:490px}
figure img{max-width:100%}figcaption{font-size:12px;word-break:break-word}
.fixed{color:#1a7f37}.broken{color:#b42318}svg{background:#fff;border:1px solid #d6d9de}
code{font-size:12px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _ci(ci: Sequence[float] | None) -> str:
    return "–" if ci is None else f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}%"


# ---------------------------------------------------------------------------------------------
# Thumbnails (written during the run, while the maps are in memory)


def _panel(res, box, clicks, width: int) -> Image.Image:
    point = None if res.click is None else (res.click.x, res.click.y)
    focus = res.focus if "focus" in res.maps else None
    img = overlay(res.image, focus=focus, click=point)
    scale = width / img.width
    img = img.resize((width, max(1, round(img.height * scale))), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(img)
    if box is not None:
        draw.rectangle([v * scale for v in box], outline=BOX_COLOUR, width=2)
    for (x, y), colour in clicks:
        r = 5
        draw.ellipse([x * scale - r, y * scale - r, x * scale + r, y * scale + r], outline=colour, width=2)
    return img


def write_thumbnail(res, rec: Mapping[str, Any], path: Path) -> None:
    """`thumbnail_png` written to ``path`` (a folder of the training callback's own)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(thumbnail_png(res, rec))
    tmp.replace(path)


def thumbnail_png(res, rec: Mapping[str, Any]) -> bytes:
    """A small PNG for the gallery: the target box, both clicks, both focus maps (adapter | base)."""
    box = rec.get("bbox")
    base_click = None if res.base is None or res.base.click is None else (res.base.click.x, res.base.click.y)
    panels = [_panel(res, box, [(base_click, BASE_CLICK)] if base_click else [], THUMB_WIDTH)]
    if res.base is not None:
        own = None if res.click is None else (res.click.x, res.click.y)
        panels.append(_panel(res.base, box, [(own, (0, 200, 0))] if own else [], THUMB_WIDTH))
    height = max(p.height for p in panels)
    sheet = Image.new("RGB", (THUMB_WIDTH * len(panels) + 4 * (len(panels) - 1), height), (255, 255, 255))
    for i, p in enumerate(panels):
        sheet.paste(p, (i * (THUMB_WIDTH + 4), 0))
    return to_png(sheet)


# ---------------------------------------------------------------------------------------------
# The page


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _accuracy_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    runs = [("adapter" if summary.get("adapter") else "model", summary)]
    if summary.get("base"):
        runs.append(("base", summary["base"]))
    return [
        [name, s["n"], s["correct"], _pct(s["accuracy"]), _ci(s["ci95"]), s["wrong_format"]]
        for name, s in runs
    ]


def _groups(summary: Mapping[str, Any]) -> str:
    parts = []
    base_by = (summary.get("base") or {}).get("by", {})
    for field, values in summary.get("by", {}).items():
        rows = []
        for value, s in values.items():
            row = [value, s["n"], _pct(s["accuracy"]), _ci(s["ci95"])]
            if base_by:
                b = base_by.get(field, {}).get(value)
                row += [_pct(b["accuracy"]) if b else "–"]
            rows.append(row)
        head = [field, "n", "accuracy", "95% CI"] + (["base accuracy"] if base_by else [])
        parts.append(_table(head, rows))
    return "".join(parts) or "<p>The dataset has no grouping fields.</p>"


def _curve(
    series: Sequence[tuple[str, str, Sequence[float | None]]], xs: Sequence[int], chance: float | None
) -> str:
    """A line chart of per-layer values in [0, 1] as inline SVG (no script)."""
    w, h, pad = 520, 200, 34
    n = len(xs)
    if n == 0:
        return "<p>No layers recorded.</p>"

    def px(i: int) -> float:
        return pad + (w - 2 * pad) * (i / (n - 1) if n > 1 else 0.5)

    def py(v: float) -> float:
        return h - pad + (2 * pad - h) * v

    out = [f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">']
    for v in (0, 0.5, 1):
        out.append(f'<line x1="{pad}" x2="{w - pad}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="4" y="{py(v) + 4:.1f}" font-size="10">{v:.1f}</text>')
    if chance is not None:
        out.append(
            f'<line x1="{pad}" x2="{w - pad}" y1="{py(chance):.1f}" y2="{py(chance):.1f}" '
            f'stroke="#888" stroke-dasharray="4 3"><title>chance {chance:.3f}</title></line>'
        )
    for i, x in enumerate(xs):
        if n <= 40 or i % max(1, n // 20) == 0:
            out.append(
                f'<text x="{px(i):.1f}" y="{h - 8}" font-size="10" text-anchor="middle">{_e(x)}</text>'
            )
    for j, (name, colour, values) in enumerate(series):
        pts = [(px(i), py(v)) for i, v in enumerate(values) if v is not None]
        if pts:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        out.append(
            f'<text x="{w - pad - 150}" y="{14 + 12 * j}" font-size="11" fill="{colour}">{_e(name)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _layers(summary: Mapping[str, Any]) -> str:
    parts = []
    base = summary.get("base") or {}
    for kind, title in (
        ("focus", "Decision focus, per decoder layer"),
        ("edge", "Edge map, per vision block"),
    ):
        rows = summary.get("layers", {}).get(kind) or []
        if not rows:
            continue
        brows = (base.get("layers") or {}).get(kind) or []
        xs = [r["layer"] for r in rows]
        series = [("pointing game", "#d62728", [r["pointing"] for r in rows])]
        series.append(("mass in box", "#1f77b4", [r["mass"] for r in rows]))
        if brows:
            series.append(("base pointing", "#ff9896", [r["pointing"] for r in brows]))
            series.append(("base mass", "#aec7e8", [r["mass"] for r in brows]))
        table_rows = []
        for i, r in enumerate(rows):
            row = [r["layer"], _pct(r["pointing"]), _pct(r["mass"])]
            if kind == "focus":
                row.append(_pct(r.get("image_share")))
            if brows:
                row += [_pct(brows[i]["pointing"]), _pct(brows[i]["mass"])]
            table_rows.append(row)
        head = ["layer", "pointing game", "mass in box"] + (["image share"] if kind == "focus" else [])
        head += ["base pointing", "base mass"] if brows else []
        parts.append(f"<h3>{_e(title)}</h3>{_curve(series, xs, summary.get('chance'))}")
        parts.append(f"<details><summary>table</summary>{_table(head, table_rows)}</details>")
    chance = summary.get("chance")
    note = f"<p>Chance level (mean box area / image area, dashed): {_pct(chance)}.</p>"
    return note + "".join(parts)


def _methods(summary: Mapping[str, Any]) -> str:
    """The extra map methods (``--maps``) beside raw focus: pointing game and mass in box."""
    methods = summary.get("methods") or {}
    if not methods:
        return ""
    base = (summary.get("base") or {}).get("methods") or {}
    last = (summary.get("layers", {}).get("focus") or [None])[-1]
    head = ["map", "pointing game", "mass in box", "n"] + (["base pointing", "base mass"] if base else [])
    rows = []
    if last is not None:
        b = ((summary.get("base") or {}).get("layers", {}).get("focus") or [None])[-1]
        row = [f"focus (layer {last['layer']} only)", _pct(last["pointing"]), _pct(last["mass"]), last["n"]]
        rows.append(row + ([_pct(b["pointing"]), _pct(b["mass"])] if base and b else []))
    for name, m in methods.items():
        row = [name, _pct(m["pointing"]), _pct(m["mass"]), m["n"]]
        if base:
            bm = base.get(name) or {}
            row += [_pct(bm.get("pointing")), _pct(bm.get("mass"))]
        rows.append(row)
    return (
        "<h2>Map methods</h2><p>Each extra map (<code>--maps</code>) over the chosen focus layers, "
        f"beside the raw focus; chance level {_pct(summary.get('chance'))}.</p>" + _table(head, rows)
    )


def _heads(summary: Mapping[str, Any]) -> str:
    rows = [[h["layer"], h["head"], _pct(h["pointing"]), h["n"]] for h in summary.get("heads", [])]
    out = _table(["layer", "head", "pointing game", "n"], rows) if rows else "<p>No per-head data.</p>"
    brows = [
        [h["layer"], h["head"], _pct(h["pointing"]), h["n"]]
        for h in (summary.get("base") or {}).get("heads", [])
    ]
    if brows:
        out += "<h3>Base model</h3>" + _table(["layer", "head", "pointing game", "n"], brows)
    return out


def _conventions(summary: Mapping[str, Any]) -> str:
    conv = summary.get("conventions") or {}
    used = conv.get("used", {})
    rows = [[c, _pct(a), used.get(c, 0)] for c, a in conv.get("accuracy", {}).items()]
    out = _table(["read as", "accuracy", "answers read so in this run"], rows)
    if conv.get("note"):
        out = f'<p class="note">{_e(conv["note"])}</p>' + out
    return out


def _flips(summary: Mapping[str, Any]) -> str:
    f = summary.get("flips")
    if not f:
        return ""
    table = _table(
        ["", "adapter right", "adapter wrong"],
        [["base right", f["both_right"], f["broken"]], ["base wrong", f["fixed"], f["both_wrong"]]],
    )
    return (
        f"<h2>Base vs adapter (paired)</h2>{table}<p>Fixed {f['fixed']}, broken {f['broken']}; exact McNemar "
        f"p = {summary['mcnemar_p']:.4g} (two-sided binomial on the discordant pairs).</p>"
    )


def _find(folder: Path, *parts: str) -> Path | None:
    for root in [folder, *sorted((folder / "shards").glob("rank-*"))]:
        path = root.joinpath(*parts)
        if path.exists():
            return path
    return None


def _gallery(records: Sequence[Mapping[str, Any]], folder: Path | None) -> str:
    def kind(r: Mapping[str, Any]) -> str | None:
        b = r.get("base")
        if r.get("error"):
            return None
        if b is not None and bool(b["correct"]) != bool(r["correct"]):
            return "fixed" if r["correct"] else "broken"
        return None if r["correct"] else "failure"

    picked = [(k, r) for r in records if (k := kind(r))]
    picked.sort(key=lambda kr: kr[0] == "failure")
    cards = []
    for k, r in picked[:GALLERY_MAX]:
        sid = safe_id(r["id"])
        thumb = None if folder is None else _find(folder, "thumbs", f"{sid}.png")
        img = ""
        if thumb is not None:
            data = base64.b64encode(thumb.read_bytes()).decode("ascii")
            img = f'<img src="data:image/png;base64,{data}" alt="thumbnail">'
        link = ""
        saved = None if folder is None else _find(folder, "samples", sid, "report.html")
        if saved is not None:
            link = f' · <a href="{_e(saved.relative_to(folder).as_posix())}">maps</a>'
        click = r.get("click")
        where = "no click" if click is None else f"({click['x']:.0f}, {click['y']:.0f})"
        cards.append(
            f'<figure>{img}<figcaption><b class="{k}">{k}</b> <code>{_e(r["id"])}</code>{link}<br>'
            f"{_e(r['instruction'])}<br>answer <code>{_e(r.get('response'))}</code> → {_e(where)}"
            "</figcaption></figure>"
        )
    if not cards:
        return "<p>No flips or failures.</p>"
    more = f"<p>{len(picked) - GALLERY_MAX} more not shown.</p>" if len(picked) > GALLERY_MAX else ""
    legend = (
        "<p>Left: with the adapter (green crosshair, focus in red/yellow); right: base model; blue: target "
        "box; orange ring: base click on the adapter panel, green ring: adapter click on the base panel.</p>"
    )
    return legend + f'<div class="gallery">{"".join(cards)}</div>{more}'


def build_report(
    summary: Mapping[str, Any], records: Sequence[Mapping[str, Any]], folder: Path | None
) -> str:
    """The page (a string). ``folder``: the run's folder, where thumbnails and result folders lie."""
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    adapter = summary.get("adapter")
    title = f"lav eval · {summary.get('dataset')}"
    errors = summary.get("errors", [])
    err_html = (
        _table(["id", "reason"], [[e["id"], e["reason"]] for e in errors]) if errors else "<p>None.</p>"
    )
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in summary.get("notes", []))
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{csp}">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
        f"<h1>{_e(title)}</h1><p>model <code>{_e(summary.get('model'))}</code> · "
        f"{'adapter <code>' + _e(adapter) + '</code>' if adapter else 'no adapter'} · format "
        f"<code>{_e(summary.get('format'))}</code> · {summary.get('n_samples', 0)} samples</p>{notes}"
        "<h2>Accuracy</h2>"
        + _table(
            ["run", "n", "correct", "accuracy", "95% CI (Wilson)", "wrong format"], _accuracy_rows(summary)
        )
        + _flips(summary)
        + f"<h2>By group</h2>{_groups(summary)}"
        + f"<h2>Coordinate-convention check</h2>{_conventions(summary)}"
        + f"<h2>Where the model looks, per layer</h2>{_layers(summary)}"
        + _methods(summary)
        + f"<h2>Localization heads</h2>{_heads(summary)}"
        + f"<h2>Flips and failures</h2>{_gallery(records, folder)}"
        + f"<h2>Errors</h2>{err_html}</main></body></html>\n"
    )
