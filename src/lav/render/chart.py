"""A line chart as inline SVG (no script, no dependency): curves of values in [0, 1]."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any


def line_chart(
    series: Sequence[tuple[str, str, Sequence[float | None]]],
    xs: Sequence[float],
    x_label: str = "",
    width: int = 420,
    height: int = 200,
) -> str:
    """``series``: (name, colour, values in [0, 1]) drawn as polylines over ``xs`` (in [0, 1]);
    a name ending in ``(dashed)`` is drawn dashed. Every text is escaped."""
    pad = 34
    w, h = width, height

    def px(x: float) -> float:
        return pad + (w - 2 * pad) * min(max(float(x), 0.0), 1.0)

    def py(v: float) -> float:
        return h - pad + (2 * pad - h) * min(max(float(v), 0.0), 1.0)

    out = [f'<svg class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">']
    for v in (0, 0.5, 1):
        out.append(f'<line x1="{pad}" x2="{w - pad}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="4" y="{py(v) + 4:.1f}" font-size="10">{v:.1f}</text>')
        out.append(f'<text x="{px(v):.1f}" y="{h - 16}" font-size="10" text-anchor="middle">{v:.1f}</text>')
    if x_label:
        out.append(
            f'<text x="{w / 2:.1f}" y="{h - 3}" font-size="10" text-anchor="middle">{html.escape(x_label)}</text>'
        )
    for j, (name, colour, values) in enumerate(series):
        pts = [(px(x), py(v)) for x, v in zip(xs, values, strict=True) if v is not None]
        dash = ' stroke-dasharray="5 3"' if name.endswith("(dashed)") else ""
        shown = name.removesuffix(" (dashed)")
        if pts:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            out.append(
                f'<polyline fill="none" stroke="{html.escape(colour)}" stroke-width="2"{dash} points="{path}">'
                f"<title>{html.escape(shown)}</title></polyline>"
            )
        out.append(
            f'<text x="{w - pad - 130}" y="{14 + 12 * j}" font-size="11" fill="{html.escape(colour)}">'
            f"{html.escape(shown)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


#: Colours of a faithfulness chart: the map's order, its inverse, the random orders.
_COLOURS = {"map": "#d62728", "inverse": "#7f7f7f", "random": "#1f77b4"}


def check_charts(res: Any) -> list[dict[str, Any]]:
    """The report's charts of ``res.faithfulness`` (and its base run's): per map, the deletion and the
    insertion curve of the answer's coordinate tokens' mean probability, beside its inverse order and
    the mean of the random orders."""
    out = []
    for who, run in (("", res), ("base model: ", getattr(res, "base", None))):
        f = None if run is None else getattr(run, "faithfulness", None)
        if not f or "orders" not in f:
            continue
        tokens = max(1, int(f["tokens"]))
        for name in f["maps"]:
            for kind in ("deletion", "insertion"):

                def prob(
                    order: str, f: dict[str, Any] = f, kind: str = kind, tokens: int = tokens
                ) -> list[float]:
                    return [math.exp(lp / tokens) for lp in f["orders"][order][kind]["logprob"]]

                randoms = [o for o in f["orders"] if o.startswith("random_")]
                mean = [sum(v) / len(randoms) for v in zip(*(prob(o) for o in randoms), strict=True)]
                auc = f["auc"]
                series = [
                    {
                        "name": f"{name} (AUC {auc[name][kind + '_auc']:.3f})",
                        "colour": _COLOURS["map"],
                        "values": prob(name),
                    },
                    {
                        "name": f"inverse (AUC {auc[name + '_inverse'][kind + '_auc']:.3f})",
                        "colour": _COLOURS["inverse"],
                        "values": prob(f"{name}_inverse"),
                    },
                    {
                        "name": f"random (AUC {auc['random'][kind + '_auc']:.3f}) (dashed)",
                        "colour": _COLOURS["random"],
                        "values": mean,
                    },
                ]
                better = "lower" if kind == "deletion" else "higher"
                verb = "removed" if kind == "deletion" else "inserted into a blurred image"
                out.append(
                    {
                        "title": f"{who}{kind} curve of the {name} map",
                        "x": f["x"],
                        "x_label": f"fraction of cells {verb}, most important first",
                        "series": series,
                        "note": (
                            f"The answer's coordinate tokens' mean probability as the map's cells are {verb} "
                            f"({f['removal']} removal, {f['steps']} steps); area under the curve: {better} = "
                            "the map explains the answer better."
                        ),
                    }
                )
    return out
