"""The checks' numbers for people: the lines `lav run` prints, the ``faithfulness`` and ``zoom`` blocks
of an evaluation's summary (a function of its records), and the eval report's section. Torch-free."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..metrics import wilson_interval

#: The areas a summary gives per map, and which way is better.
MEASURES = ("deletion_auc", "insertion_auc", "deletion_hit_auc", "insertion_hit_auc")
#: Resamples of the bootstrap interval of a mean (fixed seed: the summary is a function of the records).
BOOTSTRAP = 2000


def mean_ci(values: Sequence[float]) -> dict[str, Any]:
    """Mean of ``values`` with a 95% percentile-bootstrap interval (seed 0, `BOOTSTRAP` resamples)."""
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if arr.size == 0:
        return {"mean": None, "ci95": None, "n": 0}
    rng = np.random.default_rng(0)
    means = arr[rng.integers(0, arr.size, (BOOTSTRAP, arr.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(arr.mean()), "ci95": [float(low), float(high)], "n": int(arr.size)}


def _rate(k: int, n: int) -> dict[str, Any]:
    return {
        "n": n,
        "correct": k,
        "accuracy": k / n if n else None,
        "ci95": list(wilson_interval(k, n)) if n else None,
    }


def faithfulness_block(checks: Sequence[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """``faithfulness`` of a summary from the samples' checks (`lav.faithful.faithfulness` outputs):
    per order name (each map, ``<map>_inverse``, ``random``) the mean of each area with its interval,
    and the maps ranked by insertion minus deletion area (higher: the map explains the answer better)."""
    ran = [c for c in checks if c is not None]
    if not ran:
        return None
    done = [c for c in ran if "auc" in c]
    skipped = len(ran) - len(done)
    names: list[str] = []
    for c in done:
        names += [n for n in c["auc"] if n not in names]
    maps = {
        name: {m: mean_ci([c["auc"][name][m] for c in done if name in c["auc"]]) for m in MEASURES}
        for name in names
    }
    for name in maps:
        maps[name]["n"] = sum(name in c["auc"] for c in done)
    rank = []
    random = maps.get("random")
    for name in names:
        if name == "random" or name.endswith("_inverse"):
            continue
        d, i = maps[name]["deletion_auc"]["mean"], maps[name]["insertion_auc"]["mean"]
        if d is None or i is None:
            continue
        row = {"map": name, "score": i - d, "deletion_auc": d, "insertion_auc": i}
        if random and random["deletion_auc"]["mean"] is not None:
            row["beats_random"] = bool(
                d < random["deletion_auc"]["mean"] and i > random["insertion_auc"]["mean"]
            )
        rank.append(row)
    rank.sort(key=lambda r: -r["score"])
    first = done[0] if done else ran[0]
    return {
        "removal": first.get("removal"),
        "steps": first.get("steps"),
        "n": len(done),
        "skipped": skipped,
        "maps": maps,
        "ranking": rank,
    }


def zoom_block(checks: Sequence[tuple[Mapping[str, Any] | None, bool]]) -> dict[str, Any] | None:
    """``zoom`` of a summary from (the sample's zoom check, correct without zoom) pairs: accuracy with
    zoom per map beside the accuracy of the same samples without it."""
    ran = [(z, ok) for z, ok in checks if z is not None and z.get("maps")]
    scored = [(z, ok) for z, ok in ran if all(m.get("hit") is not None for m in z["maps"].values())]
    if not ran:
        return None
    names: list[str] = []
    for z, _ in scored:
        names += [n for n in z["maps"] if n not in names]
    out = {
        "factor": ran[0][0].get("factor"),
        "n": len(scored),
        "without": _rate(sum(bool(ok) for _, ok in scored), len(scored)),
        "maps": {},
    }
    for name in names:
        hits = [bool(z["maps"][name]["hit"]) for z, _ in scored if name in z["maps"]]
        out["maps"][name] = _rate(sum(hits), len(hits))
    return out


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``faithfulness`` and ``zoom`` blocks of an evaluation's summary (each with ``base`` when the
    records have base runs), empty when no record has a check."""
    out: dict[str, Any] = {}
    runs = [r for r in records if not r.get("error")]
    f = faithfulness_block([r.get("faithfulness") for r in runs])
    z = zoom_block([(r.get("zoom"), bool(r.get("correct"))) for r in runs])
    bases = [r["base"] for r in runs if r.get("base")]
    if f is not None:
        base = faithfulness_block([b.get("faithfulness") for b in bases])
        if base is not None:
            f["base"] = base
        out["faithfulness"] = f
    if z is not None:
        base = zoom_block([(b.get("zoom"), bool(b.get("correct"))) for b in bases])
        if base is not None:
            z["base"] = base
        out["zoom"] = z
    return out


# ---------------------------------------------------------------------------------------------
# Words


def check_lines(res: Any) -> list[str]:
    """What `lav run` prints about a result's checks (and its base run's)."""
    lines = []
    for who, run in (("", res), ("base model ", getattr(res, "base", None))):
        if run is None:
            continue
        f = getattr(run, "faithfulness", None)
        if f and "skipped" in f:
            lines.append(f"{who}faithfulness: skipped ({f['skipped']})")
        elif f:
            r = f["auc"]["random"]
            lines.append(
                f"{who}faithfulness ({f['removal']} removal, {f['steps']} steps; deletion AUC lower and insertion "
                f"AUC higher = more faithful): random {r['deletion_auc']:.3f} / {r['insertion_auc']:.3f}"
            )
            for name in f["maps"]:
                a, inv = f["auc"][name], f["auc"][f"{name}_inverse"]
                lines.append(
                    f"  {name}: deletion {a['deletion_auc']:.3f}, insertion {a['insertion_auc']:.3f} "
                    f"(inverse order {inv['deletion_auc']:.3f} / {inv['insertion_auc']:.3f})"
                )
        z = getattr(run, "zoom", None)
        if z:
            for name, m in z["maps"].items():
                c = m["click"]
                where = "no click" if c is None else f"click ({c['x']:.1f}, {c['y']:.1f})"
                lines.append(f"{who}zoom x{z['factor']:g} around the {name} peak {m['crop']}: {where}")
    return lines


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _num(m: Mapping[str, Any] | None) -> str:
    if not m or m.get("mean") is None:
        return "–"
    lo, hi = m["ci95"]
    return f"{m['mean']:.3f} [{lo:.3f}, {hi:.3f}]"


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def report_section(summary: Mapping[str, Any]) -> str:
    """The eval report's section on the checks: the maps ranked by faithfulness (adapter, base) and
    the zoom test's accuracy per map; empty without checks."""
    parts = []
    f = summary.get("faithfulness")
    if f:
        parts.append(
            "<h2>Does the map explain the click? (faithfulness)</h2><p>Each map's cells removed from the "
            f"screenshot most important first ({html.escape(str(f['removal']))} fill, {f['steps']} steps), and "
            "inserted into a blurred screenshot in the same order; at each step the probability of the model's "
            "own coordinate tokens. Deletion AUC: lower = the map found what the answer depends on; insertion "
            "AUC: higher = the same. Beside each map its inverse order and random orders (mean of 3 seeds). "
            f"Means over {f['n']} samples with 95% bootstrap intervals"
            + (
                f"; {f['skipped']} samples skipped (no target box, e.g. negatives, or no click; each "
                "record's faithfulness says why)"
                if f["skipped"]
                else ""
            )
            + ".</p>"
        )
        for who, block in (("", f), ("base model: ", f.get("base"))):
            if not block:
                continue
            rank = {r["map"]: n + 1 for n, r in enumerate(block["ranking"])}
            order = [r["map"] for r in block["ranking"]] + [n for n in block["maps"] if n not in rank]
            rows = []
            for name in order:
                m = block["maps"][name]
                beats = next((r.get("beats_random") for r in block["ranking"] if r["map"] == name), None)
                rows.append(
                    [
                        rank.get(name, ""),
                        name,
                        _num(m["deletion_auc"]),
                        _num(m["insertion_auc"]),
                        _num(m["deletion_hit_auc"]),
                        _num(m["insertion_hit_auc"]),
                        "" if beats is None else ("yes" if beats else "no"),
                        m["n"],
                    ]
                )
            head = [
                "rank",
                "order",
                "deletion AUC ↓",
                "insertion AUC ↑",
                "click kept, deletion ↓",
                "click found, insertion ↑",
                "beats random",
                "n",
            ]
            parts.append(f"<h3>{html.escape(who)}maps ranked</h3>" + _table(head, rows))
    z = summary.get("zoom")
    if z:
        parts.append(
            f"<h2>Attention-guided zoom</h2><p>A crop of 1/{z['factor']:g} of each side around each map's peak, "
            "asked again, the click mapped back to the screenshot: accuracy with the zoom beside the same "
            f"samples' accuracy without it ({z['n']} samples).</p>"
        )
        base = z.get("base")
        head = ["map", "accuracy with zoom", "without zoom"] + (
            ["base with zoom", "base without"] if base else []
        )
        rows = []
        for name, r in z["maps"].items():
            row = [name, _pct(r["accuracy"]), _pct(z["without"]["accuracy"])]
            if base:
                b = base["maps"].get(name) or {}
                row += [_pct(b.get("accuracy")), _pct(base["without"]["accuracy"])]
            rows.append(row)
        parts.append(_table(head, rows))
    return "".join(parts)


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    """What `lav eval` prints about the checks: the maps ranked, and the zoom's accuracy per map."""
    lines = []
    for who, f in (
        ("", summary.get("faithfulness")),
        ("base ", (summary.get("faithfulness") or {}).get("base")),
    ):
        if not f:
            continue
        r = f["maps"].get("random", {})
        ranked = ", ".join(
            f"{row['map']} {row['deletion_auc']:.3f}/{row['insertion_auc']:.3f}" for row in f["ranking"]
        )
        lines.append(
            f"{who}faithfulness, deletion/insertion AUC over {f['n']} samples, best first: {ranked}; random "
            f"{_mean(r.get('deletion_auc'))}/{_mean(r.get('insertion_auc'))}"
        )
    z = summary.get("zoom")
    if z:
        per = ", ".join(f"{n} {_pct(r['accuracy'])}" for n, r in z["maps"].items())
        lines.append(f"zoom x{z['factor']:g}: accuracy {per} (without zoom {_pct(z['without']['accuracy'])})")
    return lines


def _mean(m: Mapping[str, Any] | None) -> str:
    return "–" if not m or m.get("mean") is None else f"{m['mean']:.3f}"
