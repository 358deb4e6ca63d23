"""The evaluation's ``report.html``: one self-contained page from the summary and the records.

Opens from disk with no network: CSS inline, pictures as data URIs, one small inline script (the
gallery's filters, allowed by its hash) and a Content-Security-Policy that forbids loading anything.
Tables (accuracy, groups, flips, outcomes and calibration, the coordinate check, heads), per-layer
curves as inline SVG, and a gallery of flips and failures from the thumbnails written during the run
(`write_thumbnail`; `lav.eval.report_outcomes`), each linking to the sample's result folder when
``--save-maps`` kept it. Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from ..faithful.summary import report_section
from ..render import overlay, scaled, to_png
from .replay import disagreements
from .report_outcomes import GALLERY_MAX, SCRIPT_HASH, calibration_html, gallery_html, outcomes_html
from .tables import ci_text as ci_text  # re-exported: the evolve report reads them from here
from .tables import escape as escape
from .tables import percent as percent
from .tables import table_html as table_html

THUMB_WIDTH = 240
BASE_CLICK = (255, 140, 0)
BOX_COLOUR = (40, 110, 255)

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:20px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
table{border-collapse:collapse;background:#fff;margin:6px 0}
th,td{border:1px solid #d6d9de;padding:4px 8px;text-align:right}th{background:#eef0f3}
td:first-child,th:first-child{text-align:left}
.warn{background:#fff4d6;border:1px solid #e9c46a;padding:6px 10px;margin:8px 0}
.info{color:#4a5563;margin:2px 0;padding-left:8px;border-left:3px solid #c9d1db}
.absent{color:#8a4b00;font-weight:600}dl.card{display:grid;grid-template-columns:max-content 1fr;gap:0 8px;margin:4px 0}
dl.card dt{color:#5b6675}dl.card dd{margin:0}
.gallery{display:flex;flex-wrap:wrap;gap:12px}
figure{background:#fff;border:1px solid #d6d9de;margin:0;padding:6px;width:490px}
figure img{max-width:100%}figcaption{font-size:12px;word-break:break-word}
.filters{margin:6px 0}.filters label{margin-right:10px}.moved{color:#4a5563}
.fixed{color:#1a7f37}.broken{color:#b42318}svg{background:#fff;border:1px solid #d6d9de}
code{font-size:12px}
"""


# ---------------------------------------------------------------------------------------------
# Thumbnails (written during the run, while the maps are in memory)


def panel_html(res, box, clicks, width: int) -> Image.Image:
    """One picture ``width`` pixels wide: the screenshot scaled first, then its focus map, its click,
    the target ``box`` and the other ``clicks`` ((x, y), colour) drawn at that size (drawn at the
    screenshot's own size and then scaled down, a panel of a 2560x1440 screenshot took 110 ms; this
    way 15 ms)."""
    scale = width / res.image.width
    img = scaled(res.image, width)
    point = None if res.click is None else (res.click.x * scale, res.click.y * scale)
    focus = res.focus if "focus" in res.maps else None
    img = overlay(img, focus=focus, click=point)
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
    panels = [panel_html(res, box, [(base_click, BASE_CLICK)] if base_click else [], THUMB_WIDTH)]
    if res.base is not None:
        own = None if res.click is None else (res.click.x, res.click.y)
        panels.append(panel_html(res.base, box, [(own, (0, 200, 0))] if own else [], THUMB_WIDTH))
    height = max(p.height for p in panels)
    sheet = Image.new("RGB", (THUMB_WIDTH * len(panels) + 4 * (len(panels) - 1), height), (255, 255, 255))
    for i, p in enumerate(panels):
        sheet.paste(p, (i * (THUMB_WIDTH + 4), 0))
    # zlib's fastest level: written for every wrong sample of a run, a few KiB larger each.
    return to_png(sheet, compress_level=1)


# ---------------------------------------------------------------------------------------------
# The page


def _accuracy_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    runs = [("adapter" if summary.get("adapter") else "model", summary)]
    if summary.get("base"):
        runs.append(("base", summary["base"]))
    return [
        [name, s["n"], s["correct"], percent(s["accuracy"]), ci_text(s["ci95"]), s["wrong_format"]]
        for name, s in runs
    ]


def _partition(records: Sequence[Mapping[str, Any]], field: str) -> list[str | None]:
    """The value of ``field`` of each scored record (as the summary groups them)."""
    return [
        None if (v := (r.get("groups") or {}).get(field)) is None else str(v)
        for r in records
        if not r.get("error")
    ]


def _same_partition(a: Sequence[str | None], b: Sequence[str | None]) -> bool:
    """Whether two fields split the samples alike: each value of one goes with one value of the other."""
    forward: dict[str | None, str | None] = {}
    backward: dict[str | None, str | None] = {}
    for x, y in zip(a, b, strict=True):
        if forward.setdefault(x, y) != y or backward.setdefault(y, x) != x:
            return False
    return True


def _merged_fields(summary: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """The grouping fields, those that split the samples the same way in one list (a dataset's
    ``group`` and ``application`` often do): one table each instead of the same table twice."""
    fields = list(summary.get("by", {}))
    parts = {f: _partition(records, f) for f in fields}
    merged: list[list[str]] = []
    for field in fields:
        for same in merged:
            if _same_partition(parts[same[0]], parts[field]):
                same.append(field)
                break
        else:
            merged.append([field])
    return merged


def _groups(summary: Mapping[str, Any], records: Sequence[Mapping[str, Any]] = ()) -> str:
    parts = []
    by = summary.get("by", {})
    base_by = (summary.get("base") or {}).get("by", {})
    scored = [r for r in records if not r.get("error")]
    fields = _merged_fields(summary, records) if scored else [[f] for f in by]
    for same in fields:
        first = same[0]
        # The other fields' value for each value of the first (they split the samples alike).
        names = {f: dict(zip(_partition(records, first), _partition(records, f), strict=True)) for f in same}
        rows = []
        for value, s in by[first].items():
            label = " / ".join(str(names[f].get(value, value)) if f != first else value for f in same)
            row = [label, s["n"], percent(s["accuracy"]), ci_text(s["ci95"])]
            if base_by:
                b = base_by.get(first, {}).get(value)
                row += [percent(b["accuracy"]) if b else "–"]
            rows.append(row)
        head = [" / ".join(same), "n", "accuracy", "95% CI"] + (["base accuracy"] if base_by else [])
        parts.append(table_html(head, rows))
    note = (
        "<p>Fields that split the samples the same way share one table.</p>"
        if any(len(f) > 1 for f in fields)
        else ""
    )
    return note + "".join(parts) if parts else "<p>The dataset has no grouping fields.</p>"


def _official(summary: Mapping[str, Any]) -> str:
    """The benchmark's own table: micro and macro named as the paper names them, the two-way cells,
    and both refusal conventions (`lav.eval.official`)."""
    off = summary.get("official")
    if not off:
        return ""
    micro, macro = off["micro"], off.get("macro")
    rows = [[micro["name"], "micro", micro["n"], percent(micro["accuracy"])]]
    if macro:
        rows.append(
            [macro["name"], f"macro over {macro['over']}", macro["cells"], percent(macro["accuracy"])]
        )
    conventions = summary.get("refusal_conventions")
    if conventions:
        for name in ("official", "excluded"):
            c = conventions[name]
            rows.append(
                [
                    f"refusal samples {'scored' if name == 'official' else 'left out'}",
                    name,
                    c["n"],
                    percent(c["accuracy"]),
                ]
            )
    parts = [
        f"<h2>{escape(off['benchmark'])}: the official numbers</h2>",
        f'<p class="info">rule and names: {escape(off.get("source") or "lav")}</p>',
        table_html(["number", "average", "n (cells for macro)", "accuracy"], rows),
    ]
    buckets = off.get("buckets") or {}
    if buckets:
        parts.append(
            table_html(
                ["category (a sample counts in each of its own)", "n", "accuracy"],
                [[k, v["n"], percent(v["accuracy"])] for k, v in buckets.items()],
            )
        )
    for name, cells in off.get("tables", {}).items():
        # The bottom line (`official.totals`) holds every column, in the paper's order.
        total = off.get("totals", {}).get(name)
        seen = total or {c: None for row in cells.values() for c in row}
        cols = [c for c in seen if c != "all"] + ["all"]
        body = [
            [row] + [percent(cells[row][c]["accuracy"]) if c in cells[row] else "–" for c in cols]
            for row in cells
        ]
        if total:
            body.append(["all"] + [percent(total[c]["accuracy"]) for c in cols])
        parts.append(table_html([name, *cols], body))
    return "".join(parts)


def curve_svg(
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
                f'<text x="{px(i):.1f}" y="{h - 8}" font-size="10" text-anchor="middle">{escape(x)}</text>'
            )
    for j, (name, colour, values) in enumerate(series):
        pts = [(px(i), py(v)) for i, v in enumerate(values) if v is not None]
        if pts:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        out.append(
            f'<text x="{w - pad - 150}" y="{14 + 12 * j}" font-size="11" fill="{colour}">{escape(name)}</text>'
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
            row = [r["layer"], percent(r["pointing"]), percent(r["mass"])]
            if kind == "focus":
                row.append(percent(r.get("image_share")))
            if brows:
                row += [percent(brows[i]["pointing"]), percent(brows[i]["mass"])]
            table_rows.append(row)
        head = ["layer", "pointing game", "mass in box"] + (["image share"] if kind == "focus" else [])
        head += ["base pointing", "base mass"] if brows else []
        parts.append(f"<h3>{escape(title)}</h3>{curve_svg(series, xs, summary.get('chance'))}")
        parts.append(f"<details><summary>table</summary>{table_html(head, table_rows)}</details>")
    chance = summary.get("chance")
    note = f"<p>Chance level (mean box area / image area, dashed): {percent(chance)}.</p>"
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
        row = [
            f"focus (layer {last['layer']} only)",
            percent(last["pointing"]),
            percent(last["mass"]),
            last["n"],
        ]
        rows.append(row + ([percent(b["pointing"]), percent(b["mass"])] if base and b else []))
    for name, m in methods.items():
        row = [name, percent(m["pointing"]), percent(m["mass"]), m["n"]]
        if base:
            bm = base.get(name) or {}
            row += [percent(bm.get("pointing")), percent(bm.get("mass"))]
        rows.append(row)
    return (
        "<h2>Map methods</h2><p>Each extra map (<code>--maps</code>) over the chosen focus layers, "
        f"beside the raw focus; chance level {percent(summary.get('chance'))}.</p>" + table_html(head, rows)
    )


def _heads(summary: Mapping[str, Any]) -> str:
    rows = [[h["layer"], h["head"], percent(h["pointing"]), h["n"]] for h in summary.get("heads", [])]
    out = table_html(["layer", "head", "pointing game", "n"], rows) if rows else "<p>No per-head data.</p>"
    brows = [
        [h["layer"], h["head"], percent(h["pointing"]), h["n"]]
        for h in (summary.get("base") or {}).get("heads", [])
    ]
    if brows:
        out += "<h3>Base model</h3>" + table_html(["layer", "head", "pointing game", "n"], brows)
    return out


def _conventions(summary: Mapping[str, Any]) -> str:
    conv = summary.get("conventions") or {}
    used = conv.get("used", {})
    rows = [[c, percent(a), used.get(c, 0)] for c, a in conv.get("accuracy", {}).items()]
    out = table_html(["read as", "accuracy", "answers read so in this run"], rows)
    if conv.get("note"):
        out = f'<p class="warn">{escape(conv["note"])}</p>' + out
    return out


def _flips(summary: Mapping[str, Any]) -> str:
    f = summary.get("flips")
    if not f:
        return ""
    table = table_html(
        ["", "adapter right", "adapter wrong"],
        [["base right", f["both_right"], f["broken"]], ["base wrong", f["fixed"], f["both_wrong"]]],
    )
    return (
        f"<h2>Base vs adapter (paired)</h2>{table}<p>Fixed {f['fixed']}, broken {f['broken']}; exact McNemar "
        f"p = {summary['mcnemar_p']:.4g} (two-sided binomial on the discordant pairs).</p>"
    )


def _short(name: Any) -> str:
    """A model or adapter as the title names it: the demo's by that name, a folder by its own name."""
    from ..render.views import is_demo

    text = str(name)
    if is_demo(text):
        return "demo model"
    from ..demo.assets import ADAPTER

    try:
        folder = Path(text).expanduser()
        if folder.resolve() == ADAPTER.resolve():
            return "demo adapter"
        # A local folder by its name; a hub id (owner/name, no such folder here) as written.
        return folder.name if folder.is_dir() and folder.name else text
    except (OSError, ValueError):
        return text


def _replay(summary: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> str:
    """``--responses``: where transformers' greedy choice differs from the engine's answers (first
    on the page: an engine bug or a precision problem shows before any number is trusted)."""
    resp, agree = summary.get("responses"), summary.get("agreement")
    if not resp or not agree:
        return ""
    rows = []
    for r in disagreements(records)[:GALLERY_MAX]:
        a = r["agreement"]
        first = a["first_disagreement"] or {}
        coords = {True: "yes", False: "no", None: "none"}[a["coords_agree"]]
        rows.append(
            [
                r["id"],
                coords,
                first.get("index"),
                first.get("token"),
                first.get("greedy"),
                f"{a['logprob']:.3f}",
            ]
        )
    head = [
        "id",
        "coordinates agree",
        "first differing token",
        "engine wrote",
        "transformers would write",
        "log p(answer)",
    ]
    mean = agree["mean_logprob"]
    return (
        f"<h2>Where the engines disagree</h2><p>Answers of <code>{escape(resp['engine'])}</code> "
        f"({escape(resp['format'])}: <code>{escape(resp['file'])}</code>), each forced in one forward. "
        f"Transformers' greedy choice writes every coordinate token of {percent(agree['coords'])} of the "
        f"{agree['n_coords']} answers with coordinates, and every token of {percent(agree['answer'])} of "
        f"{agree['n']}; mean log-probability of an answer {'–' if mean is None else f'{mean:.3f}'}. "
        f"Samples the file does not answer: {resp['missing']} (errors, inside n); answers that match "
        f"no sample: {resp['unmatched']['count']}.</p>"
        + (table_html(head, rows) if rows else "<p>None: greedy decoding writes every answer as given.</p>")
    )


def eval_page(
    summary: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    folder: Path | None,
    resumed: int = 0,
) -> str:
    """The page (a string). ``folder``: the run's folder, where thumbnails and result folders lie;
    ``resumed``: how many samples the run found already done there when it started."""
    csp = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src {SCRIPT_HASH}"
    adapter = summary.get("adapter")
    title = f"lav eval · {summary.get('dataset')} · {_short(summary.get('model'))}"
    if adapter:
        title += f" + {_short(adapter)}"
    errors = summary.get("errors", [])
    err_html = (
        table_html(["id", "reason"], [[e["id"], e["reason"]] for e in errors]) if errors else "<p>None.</p>"
    )
    # What the reader found in the data: information, not warnings.
    notes = "".join(f'<p class="info">{escape(n)}</p>' for n in summary.get("notes", []))
    if resumed:
        n = summary.get("n_samples", 0)
        notes += (
            f'<p class="info resumed">Resumed: {resumed} of {n} samples were already done in this folder '
            f"when the run started; it ran the other {n - resumed}.</p>"
        )
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{csp}">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{escape(title)}</h1><p>model <code>{escape(summary.get('model'))}</code> · "
        f"{'adapter <code>' + escape(adapter) + '</code>' if adapter else 'no adapter'} · format "
        f"<code>{escape(summary.get('format'))}</code> · {summary.get('n_samples', 0)} samples</p>{notes}"
        + _replay(summary, records)
        + "<h2>Accuracy</h2>"
        + table_html(
            ["run", "n", "correct", "accuracy", "95% CI (Wilson)", "wrong format"], _accuracy_rows(summary)
        )
        + _flips(summary)
        + outcomes_html(summary)
        + calibration_html(summary)
        + _official(summary)
        + f"<h2>By group</h2>{_groups(summary, records)}"
        + f"<h2>Coordinate-convention check</h2>{_conventions(summary)}"
        + f"<h2>Where the model looks, per layer</h2>{_layers(summary)}"
        + _methods(summary)
        + report_section(summary)
        + f"<h2>Localization heads</h2>{_heads(summary)}"
        + f"<h2>Flips and failures</h2>{gallery_html(records, folder)}"
        + f"<h2>Errors</h2>{err_html}</main></body></html>\n"
    )


#: `eval_page` under its former name (before the three pages, a result's, an evaluation's and an
#: evolution's, got names of their own), for callers of ``lav.eval.build_report``.
build_report = eval_page
