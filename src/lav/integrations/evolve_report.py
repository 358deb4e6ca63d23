"""``report.html`` of `lav evolve`: curves across checkpoints and a filmstrip per probe sample.

One self-contained page, as the evaluation report (`lav.eval.report`): no script, CSS inline,
pictures as data URIs, a Content-Security-Policy that forbids loading anything. The curves reuse the
report's inline-SVG chart (x: checkpoints by step); a filmstrip shows one sample's focus and click
at the base model and at each checkpoint, so the moment the adapter starts looking at the target
can be seen. Torch-free: it reads the checkpoints' folders (`Result.load`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import LavError
from ..eval.records import safe_id
from ..eval.report import CSS, ci_text, curve_svg, escape, panel_html, percent, table_html
from ..render import to_png
from ..result import Result

FRAME_WIDTH = 160
#: Most samples that get a filmstrip, to keep the page light.
STRIPS_MAX = 40
_PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")

_EXTRA_CSS = """
.strip{display:flex;gap:6px;overflow-x:auto;background:#fff;border:1px solid #d6d9de;padding:6px}
.strip figure{width:auto;border:none;padding:0}.hit{color:#1a7f37}.miss{color:#b42318}
"""


def _label(r: Mapping[str, Any]) -> str:
    return r["checkpoint"] if r.get("step") is None else str(r["step"])


def _layer_values(r: Mapping[str, Any], kind: str, metric: str) -> dict[int, float | None]:
    return {lr["layer"]: lr[metric] for lr in (r.get("layers") or {}).get(kind, [])}


def _curves(evolution: Mapping[str, Any]) -> str:
    rows = evolution["checkpoints"]
    base = evolution.get("base")
    xs = [_label(r) for r in rows]
    chance = next((r.get("chance") for r in rows if r.get("chance") is not None), None)
    acc = [("click accuracy", _PALETTE[0], [r["accuracy"] for r in rows])]
    if base is not None:
        acc.append(("base model", "#999", [base["accuracy"]] * len(rows)))
    parts = [f"<h3>Click accuracy</h3>{curve_svg(acc, xs, chance)}"]
    for kind, title in (("focus", "Decision focus"), ("edge", "Edge map")):
        layers = sorted({layer for r in rows for layer in _layer_values(r, kind, "pointing")})
        if not layers:
            continue
        for metric, what in (("pointing", "pointing game"), ("mass", "mass in the target box")):
            series = []
            for i, layer in enumerate(layers):
                colour = _PALETTE[i % len(_PALETTE)]
                series.append(
                    (f"layer {layer}", colour, [_layer_values(r, kind, metric).get(layer) for r in rows])
                )
            parts.append(
                f"<h3>{escape(title)}: {escape(what)}, per layer</h3>{curve_svg(series, xs, chance)}"
            )
            if base is not None:
                b = _layer_values(base, kind, metric)
                parts.append(
                    "<p>Base model: "
                    + ", ".join(f"layer {k} {percent(v)}" for k, v in sorted(b.items()))
                    + "</p>"
                )
    return "".join(parts)


def _summary_table(evolution: Mapping[str, Any]) -> str:
    rows = ([evolution["base"]] if evolution.get("base") else []) + list(evolution["checkpoints"])
    last = max((lr["layer"] for r in rows for lr in (r.get("layers") or {}).get("focus", [])), default=None)
    out = []
    for r in rows:
        point = _layer_values(r, "focus", "pointing").get(last) if last is not None else None
        mass = _layer_values(r, "focus", "mass").get(last) if last is not None else None
        out.append(
            [
                r["checkpoint"],
                "–" if r.get("step") is None else r["step"],
                r["n"],
                percent(r["accuracy"]),
                ci_text(r["ci95"]),
                r["wrong_format"],
                percent(point),
                percent(mass),
            ]
        )
    head = ["checkpoint", "step", "n", "accuracy", "95% CI", "wrong format"]
    head += [f"pointing (layer {last})", f"mass in box (layer {last})"]
    links = " · ".join(
        f'<a href="{escape(r["checkpoint"])}/report.html">{escape(r["checkpoint"])}</a>' for r in rows
    )
    return table_html(head, out) + f"<p>Each run's own report: {links}</p>"


def _read_records(folder: Path) -> dict[str, dict[str, Any]]:
    from ..eval.log import SAMPLES_FILE, read_records

    path = folder / SAMPLES_FILE
    return {r["id"]: r for r in read_records(path)} if path.is_file() else {}


def _frame(folder: Path, rec: Mapping[str, Any] | None, sample_id: str, caption: str) -> str:
    try:
        res = Result.load(folder / "samples" / safe_id(sample_id))
    except LavError:
        return f"<figure><figcaption>{escape(caption)}: not run</figcaption></figure>"
    img = panel_html(res, None if rec is None else rec.get("bbox"), [], FRAME_WIDTH)
    data = base64.b64encode(to_png(img)).decode("ascii")
    mark = ""
    if rec is not None and not rec.get("error"):
        mark = ' <b class="hit">✓</b>' if rec["correct"] else ' <b class="miss">✗</b>'
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption)}">'
        f"<figcaption>{escape(caption)}{mark}</figcaption></figure>"
    )


def _strips(evolution: Mapping[str, Any], out: Path) -> str:
    runs: list[tuple[str, Path]] = []
    if evolution.get("base"):
        runs.append(("base", out / "base"))
    for r in evolution["checkpoints"]:
        runs.append(
            (r["checkpoint"] if r.get("step") is None else f"step {r['step']}", out / r["checkpoint"])
        )
    records = [(caption, folder, _read_records(folder)) for caption, folder in runs]
    ids: Sequence[str] = evolution["samples"]
    parts = []
    for sid in ids[:STRIPS_MAX]:
        instruction = next((recs[sid]["instruction"] for _, _, recs in records if sid in recs), "")
        frames = "".join(_frame(folder, recs.get(sid), sid, caption) for caption, folder, recs in records)
        parts.append(
            f'<h3><code>{escape(sid)}</code> · {escape(instruction)}</h3><div class="strip">{frames}</div>'
        )
    more = f"<p>{len(ids) - STRIPS_MAX} more samples not shown.</p>" if len(ids) > STRIPS_MAX else ""
    return "".join(parts) + more


def _focus_layers(evolution: Mapping[str, Any], out: Path) -> list[int] | None:
    """The decoder layers the filmstrips' focus averages: those of the first saved result."""
    folders = (["base"] if evolution.get("base") else []) + [
        r["checkpoint"] for r in evolution["checkpoints"]
    ]
    for name in folders:
        for sid in evolution["samples"][:1]:
            try:
                res = Result.load(out / name / "samples" / safe_id(sid))
            except LavError:
                continue
            return res.focus_layers if "focus" in res.maps else None
    return None


def evolve_page(evolution: Mapping[str, Any], out: Path) -> str:
    """The page (a string); ``out``: the evolve folder, where each run's folder lies."""
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    title = f"lav evolve · {evolution.get('dataset')}"
    layers = _focus_layers(evolution, out)
    which = ""
    if layers:
        from .overlays import layer_list

        which = f" ({'decoder layer' if len(layers) == 1 else 'mean of decoder layers'} {layer_list(layers)})"
    legend = (
        f"<p>Each frame: the decision focus{escape(which)} (red/yellow) and the click (crosshair) at that "
        "checkpoint; blue: the target box; ✓ the click is on the target.</p>"
    )
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
        f'content="{csp}"><title>{escape(title)}</title><style>{CSS}{_EXTRA_CSS}</style></head><body><main>'
        f"<h1>{escape(title)}</h1><p>model <code>{escape(evolution.get('model'))}</code> · "
        f"{len(evolution['checkpoints'])} checkpoints · {len(evolution['samples'])} samples</p>"
        f"<h2>Per checkpoint</h2>{_summary_table(evolution)}"
        f"<h2>Curves across checkpoints</h2>{_curves(evolution)}"
        f"<h2>Filmstrips</h2>{legend}{_strips(evolution, out)}</main></body></html>\n"
    )
