"""The evaluation report's view of the errors: the outcome table (`lav.eval.taxonomy`), the flips by
outcome, the calibration of the digit confidence (`lav.eval.calibration`) and the gallery of flips
and failures, flips sorted by how far the focus moved between the base model and the adapter.

The gallery filters by kind, outcome and group with one small inline script (no dependency); the
page's Content-Security-Policy allows that script alone, by its hash (`SCRIPT_HASH`). Torch-free.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .layout import safe_id
from .records import NO_CLICK_TARGETS
from .tables import escape, percent, table_html
from .taxonomy import OUTCOMES

#: Most thumbnails the gallery embeds (flips first, then failures), to keep the page light.
GALLERY_MAX = 60

#: What each outcome means, one line each (the report's key; README "lav eval" says the same).
MEANING = {
    "correct": "right by the benchmark's official rule",
    "near_miss": "outside the target, within one box size of it (distance to the box ≤ its longer side)",
    "wrong_element": "on another annotated element, far from the target, or a click where the target is absent",
    "off_image": "a click outside the image",
    "wrong_format": "neither a point nor a refusal",
    "refused": "said the target is not there, though it is",
    "error": "the sample could not be run",
}

GALLERY_JS = """(() => {
  const bar = document.getElementById("gallery-filters");
  const cards = Array.from(document.querySelectorAll("#gallery figure"));
  const count = document.getElementById("gallery-count");
  const apply = () => {
    const kind = bar.elements.kind.value, outcome = bar.elements.outcome.value, group = bar.elements.group.value;
    let shown = 0;
    for (const card of cards) {
      const ok = (!kind || card.dataset.kind === kind)
        && (!outcome || card.dataset.outcome === outcome || card.dataset.baseOutcome === outcome)
        && (!group || JSON.parse(card.dataset.groups).includes(group));
      card.hidden = !ok;
      shown += ok ? 1 : 0;
    }
    count.textContent = `${shown} of ${cards.length} shown`;
  };
  bar.addEventListener("change", apply);
  apply();
})();"""
#: The CSP source that allows `GALLERY_JS` and nothing else.
SCRIPT_HASH = (
    "'sha256-" + base64.b64encode(hashlib.sha256(GALLERY_JS.encode("utf-8")).digest()).decode() + "'"
)


def _runs(summary: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    runs = [("adapter" if summary.get("adapter") else "model", summary)]
    if summary.get("base"):
        runs.append(("base", summary["base"]))
    return runs


def outcomes_html(summary: Mapping[str, Any]) -> str:
    """The outcome table, base and adapter side by side, with how often the focus was on the target,
    and the flips by outcome."""
    runs = [(name, s["outcomes"]) for name, s in _runs(summary) if s.get("outcomes")]
    if not runs:
        return ""
    head = ["outcome"]
    for name, _ in runs:
        head += [f"{name} n", f"{name} share", f"{name} looked right"]
    rows = []
    for kind in OUTCOMES:
        row: list[Any] = [kind]
        for _, t in runs:
            known = t["looked_known"][kind]
            row += [
                t["counts"][kind],
                percent(t["share"][kind]),
                f"{t['looked_right'][kind]} of {known}" if known else "–",
            ]
        rows.append(row)
    lines = "".join(
        f"<p>{escape(name)}: of the clicks that missed, {t['clicked_wrong']['looked_right']} had the focus on the "
        f"target (a decoding error: looked right, wrote other numbers) and {t['clicked_wrong']['looked_wrong']} "
        "elsewhere (a recognition error).</p>"
        for name, t in runs
    )
    out = (
        '<h2 id="outcomes">What kind of error</h2><p>One outcome per sample; <em>looked right</em>: the '
        "focus's top cell lies on the target (samples with a target).</p>"
        + table_html(head, rows)
        + lines
        + '<details><summary>what each outcome means</summary><dl class="card">'
        + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in MEANING.items())
        + "</dl></details>"
    )
    flips = summary.get("outcome_flips")
    if flips:
        body = [["fixed", f"base {k}", v] for k, v in flips["fixed"].items()]
        body += [["broken", f"adapter {k}", v] for k, v in flips["broken"].items()]
        table = table_html(["flip", "the other side was", "samples"], body) if body else "<p>No flips.</p>"
        every = table_html(["base -> adapter", "samples"], list(flips["pairs"].items()))
        out += (
            '<h3 id="outcome-flips">Flips by outcome</h3>'
            f"{table}<details><summary>every base → adapter pair</summary>{every}</details>"
        )
    return out


def calibration_html(summary: Mapping[str, Any]) -> str:
    """Accuracy by confidence decile and the expected calibration error, base and adapter."""
    runs = [(name, s["calibration"]) for name, s in _runs(summary) if s.get("calibration")]
    if not runs:
        return ""
    head = ["confidence"]
    for name, _ in runs:
        head += [f"{name} n", f"{name} mean confidence", f"{name} accuracy"]
    rows = []
    for i, b in enumerate(runs[0][1]["bins"]):
        row: list[Any] = [f"{b['low']:.1f}–{b['high']:.1f}"]
        for _, c in runs:
            cell = c["bins"][i]
            row += [cell["n"], percent(cell["confidence"]), percent(cell["accuracy"])]
        rows.append(row)
    ece = "; ".join(
        f"{escape(name)}: expected calibration error {percent(c['ece'])} over {c['n']} clicks "
        f"(mean confidence {percent(c['mean_confidence'])}, accuracy {percent(c['accuracy'])})"
        for name, c in runs
    )
    return (
        '<h2 id="calibration">Confidence in the digits</h2><p>A click\'s confidence is the product of the '
        "probabilities of the tokens that spell its numbers, read from the generate pass's own scores. "
        f"Answers without a click are left out.</p><p>{ece}.</p>" + table_html(head, rows)
    )


# ---------------------------------------------------------------------------------------------
# The gallery


def _find(folder: Path, *parts: str) -> Path | None:
    for root in [folder, *sorted((folder / "shards").glob("rank-*"))]:
        path = root.joinpath(*parts)
        if path.exists():
            return path
    return None


def _answer(outcome: Mapping[str, Any], who: str) -> str:
    """The raw answer, the click it was read as, its outcome and confidence, as labelled values."""
    click = outcome.get("click")
    where = "none" if click is None else f"({click['x']:.0f}, {click['y']:.0f}) px"
    sure = "" if outcome.get("confidence") is None else percent(outcome["confidence"])
    return (
        f"<dt>{who}answer</dt><dd><code>{escape(outcome.get('response'))}</code></dd>"
        f"<dt>{who}click</dt><dd>{escape(where)}</dd>"
        + (f"<dt>{who}confidence</dt><dd>{escape(sure)}</dd>" if sure else "")
        + f"<dt>{who}outcome</dt><dd>{escape(outcome.get('outcome') or '–')}</dd>"
    )


def focus_shift(rec: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """How far the focus moved between the base model and the adapter on one record: the distance
    between the two focus peaks (original pixels) and the change of the focus's mass in the box
    (adapter minus base); None where a side lacks it."""
    base = rec.get("base") or {}
    a, b = rec.get("focus_peak"), base.get("focus_peak")
    dist = None if a is None or b is None else math.hypot(a[0] - b[0], a[1] - b[1])
    ma, mb = rec.get("focus_mass"), base.get("focus_mass")
    return dist, None if ma is None or mb is None else ma - mb


def _kind(r: Mapping[str, Any]) -> str | None:
    b = r.get("base")
    if r.get("error"):
        return None
    if b is not None and bool(b["correct"]) != bool(r["correct"]):
        return "fixed" if r["correct"] else "broken"
    return None if r["correct"] else "failure"


def _order(kr: tuple[str, Mapping[str, Any]]) -> tuple[bool, float, float]:
    dist, dmass = focus_shift(kr[1])
    return (kr[0] == "failure", -(dist if dist is not None else -1.0), -abs(dmass or 0.0))


def _select(name: str, label: str, values: Sequence[str]) -> str:
    opts = '<option value="">all</option>' + "".join(
        f'<option value="{escape(v)}">{escape(v)}</option>' for v in values
    )
    return f'<label>{escape(label)} <select name="{name}">{opts}</select></label> '


def gallery_html(records: Sequence[Mapping[str, Any]], folder: Path | None) -> str:
    """The flips (fixed / broken; sorted by how far the focus moved) then the failures, each with its
    thumbnail opening the sample's own comparison page when ``--save-maps`` kept it; filterable."""
    picked = [(k, r) for r in records if (k := _kind(r))]
    picked.sort(key=_order)
    cards = []
    for k, r in picked[:GALLERY_MAX]:
        sid = safe_id(r["id"])
        thumb = None if folder is None else _find(folder, "thumbs", f"{sid}.png")
        saved = None if folder is None else _find(folder, "samples", sid, "report.html")
        href = None if saved is None or folder is None else escape(saved.relative_to(folder).as_posix())
        img = ""
        if thumb is not None:
            data = base64.b64encode(thumb.read_bytes()).decode("ascii")
            img = f'<img src="data:image/png;base64,{data}" alt="thumbnail">'
            if href:
                img = f'<a href="{href}" title="open the full comparison">{img}</a>'
        link = f' · <a href="{href}">maps</a>' if href else ""
        absent = ""
        if r.get("target") in NO_CLICK_TARGETS:
            did = "the model clicked" if r.get("click") is not None else "the model did not click"
            absent = f'<br><span class="absent">target absent: {did}</span>'
        dist, dmass = focus_shift(r)
        moved = ""
        if r.get("base") is not None and dist is not None:
            moved = f'<br><span class="moved">focus moved {dist:.0f} px'
            if dmass is not None:
                moved += (
                    f", mass in box {percent(r['base'].get('focus_mass'))} → {percent(r.get('focus_mass'))}"
                )
            moved += "</span>"
        values = _answer(r, "")
        if r.get("base") is not None:
            values += _answer(r["base"], "base ")
        groups = [f"{f}={v}" for f, v in sorted((r.get("groups") or {}).items())]
        base_outcome = (r.get("base") or {}).get("outcome") or ""
        attrs = (
            f'data-kind="{k}" data-outcome="{escape(r.get("outcome") or "")}" '
            f'data-base-outcome="{escape(base_outcome)}" data-groups="{escape(json.dumps(groups))}" '
            f'data-shift="{"" if dist is None else f"{dist:.1f}"}"'
        )
        cards.append(
            f'<figure {attrs}>{img}<figcaption><b class="{k}">{k}</b> <code>{escape(r["id"])}</code>{link}'
            f'{absent}{moved}<br>{escape(r["instruction"])}<dl class="card">{values}</dl></figcaption></figure>'
        )
    if not cards:
        return "<p>No flips or failures.</p>"
    more = f"<p>{len(picked) - GALLERY_MAX} more not shown.</p>" if len(picked) > GALLERY_MAX else ""
    legend = (
        "<p>Flips first, the one whose focus moved farthest between base and adapter first (the distance "
        "between the two focus peaks), then failures. Left: with the adapter (green crosshair, focus in "
        "red/yellow); right: base model; blue: target box; orange ring: base click on the adapter panel, "
        "green ring: adapter click on the base panel. A picture opens the sample's full comparison.</p>"
    )
    shown = [r for _, r in picked[:GALLERY_MAX]]
    outcomes = [
        o
        for o in OUTCOMES
        if any(o in (r.get("outcome"), (r.get("base") or {}).get("outcome")) for r in shown)
    ]
    groups = sorted({f"{f}={v}" for r in shown for f, v in (r.get("groups") or {}).items()})
    kinds = [k for k in ("fixed", "broken", "failure") if any(kind == k for kind, _ in picked[:GALLERY_MAX])]
    bar = (
        '<form id="gallery-filters" class="filters">'
        + _select("kind", "kind", kinds)
        + _select("outcome", "outcome (either model)", outcomes)
        + _select("group", "group", groups)
        + '<span id="gallery-count"></span></form>'
    )
    return (
        legend
        + bar
        + f'<div class="gallery" id="gallery">{"".join(cards)}</div>{more}<script>{GALLERY_JS}</script>'
    )
