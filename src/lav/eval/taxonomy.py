"""What kind of error each answer is: one ``outcome`` per scored sample, and where the focus was.

Torch-free. `classify` gives each answer exactly one of `OUTCOMES`, first match wins:

- ``correct``: right by the official rule (`lav.eval.records.score`; a refusal on a negative /
  refusal sample included);
- ``refused``: the answer is a refusal on a sample whose target is there;
- ``wrong_format``: neither a point nor a refusal;
- ``off_image``: a click outside the image (x < 0, x > width, y < 0 or y > height, stored pixels);
- ``wrong_element``: a click on another annotated element (inside the box of another sample of the
  same screenshot, by that sample's official rule, where that box does not overlap the target's),
  or a click on a sample whose target is absent (negative / refusal), or a click far from the target;
- ``near_miss``: outside the target but close: the distance from the click to the nearest point of
  the target's box (a polygon's bounding box), in stored-image pixels, is at most the box's longer
  side, ``max(x2 - x1, y2 - y1)``;
- ``error``: the sample could not be run (`lav.eval.records.error_record`).

Beside it, ``looked_right`` (None without a target or a focus map): the focus's top merged cell,
its centre mapped to original pixels as the pointing game does (`top_cell_centre`), lies on the
target by the official rule. A wrong click with ``looked_right`` is a decoding error (the model
looked at the element but wrote other numbers); without it, a recognition error.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .samples import Sample, official_hit

#: Every outcome, in the order the tables list them.
OUTCOMES = ("correct", "near_miss", "wrong_element", "off_image", "wrong_format", "refused", "error")
#: Outcomes of an answer that clicked and missed: the ones the focus can explain.
CLICKED_WRONG = ("near_miss", "wrong_element", "off_image")

_NO_CLICK_TARGETS = ("negative", "refusal")


def stored_box(sample: Sample, size: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """The target's box (a polygon's bounding box) in pixels of the stored image of ``size``: scaled
    from the annotated size when the official script divides by it (``size_rule`` annotated)."""
    if sample.box is None:
        return None
    ref = sample.image_size if sample.size_rule == "annotated" and sample.image_size else size
    sx, sy = size[0] / ref[0], size[1] / ref[1]
    x1, y1, x2, y2 = sample.box
    return (min(x1, x2) * sx, min(y1, y2) * sy, max(x1, x2) * sx, max(y1, y2) * sy)


def box_distance(x: float, y: float, box: tuple[float, float, float, float]) -> float:
    """Euclidean distance from ``(x, y)`` to the nearest point of ``box`` (0 inside or on an edge)."""
    x1, y1, x2, y2 = box
    return math.hypot(max(x1 - x, 0.0, x - x2), max(y1 - y, 0.0, y - y2))


def _overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def classify(
    sample: Sample,
    x: float | None,
    y: float | None,
    *,
    refused: bool,
    correct: bool,
    size: tuple[int, int],
    others: Sequence[Sample] = (),
) -> str:
    """The outcome (`OUTCOMES`) of a click at ``(x, y)`` (stored-image pixels of ``size``; None: no
    click) or a refusal, scored ``correct``; ``others``: the other samples of the same screenshot,
    whose boxes are the other annotated elements."""
    if correct:
        return "correct"
    if refused:
        return "refused"
    if x is None or y is None:
        return "wrong_format"
    if not (0.0 <= x <= size[0] and 0.0 <= y <= size[1]):
        return "off_image"
    box = stored_box(sample, size)
    if sample.target in _NO_CLICK_TARGETS or box is None:
        return "wrong_element"
    for other in others:
        theirs = stored_box(other, size)
        if theirs is None or other.target in _NO_CLICK_TARGETS or _overlap(theirs, box):
            continue  # nested or overlapping elements are the target's own neighbourhood
        if official_hit(other, x, y, size):
            return "wrong_element"
    if box_distance(x, y, box) <= max(box[2] - box[0], box[3] - box[1]):
        return "near_miss"
    return "wrong_element"


def other_elements(samples: Iterable[Sample]) -> dict[str, tuple[Sample, ...]]:
    """For each sample id, the other samples on the same screenshot (by resolved path)."""
    by_image: dict[Path, list[Sample]] = {}
    for s in samples:
        by_image.setdefault(Path(s.image).resolve(), []).append(s)
    return {
        s.id: tuple(o for o in group if o.id != s.id and o.box != s.box)
        for group in by_image.values()
        for s in group
    }


# ---------------------------------------------------------------------------------------------
# The summary's tables (from records alone)


def outcome_table(outcomes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"n", "counts": {outcome: k}, "share": {outcome: k / n}, "looked_right": {outcome: k},
    "looked_known": {outcome: k}, "clicked_wrong": {"looked_right": k, "looked_wrong": k}}`` over
    one model's outcomes (records, or their ``base``); ``looked_known`` counts the answers with a
    focus verdict (a target and a focus map)."""
    counts = Counter(o.get("outcome") for o in outcomes)
    n = len(outcomes)
    right: Counter[str] = Counter()
    known: Counter[str] = Counter()
    for o in outcomes:
        if o.get("looked_right") is not None:
            known[o["outcome"]] += 1
            right[o["outcome"]] += bool(o["looked_right"])
    wrong_clicks = [
        o for o in outcomes if o.get("outcome") in CLICKED_WRONG and o.get("looked_right") is not None
    ]
    return {
        "n": n,
        "counts": {k: counts.get(k, 0) for k in OUTCOMES},
        "share": {k: (counts.get(k, 0) / n if n else None) for k in OUTCOMES},
        "looked_right": {k: right.get(k, 0) for k in OUTCOMES},
        "looked_known": {k: known.get(k, 0) for k in OUTCOMES},
        "clicked_wrong": {
            "looked_right": sum(bool(o["looked_right"]) for o in wrong_clicks),
            "looked_wrong": sum(not o["looked_right"] for o in wrong_clicks),
        },
    }


def outcome_flips(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The flips of a paired run by outcome, from ``(base outcome, adapter outcome)`` pairs: ``fixed``
    by the base's outcome (the adapter's is ``correct``), ``broken`` by the adapter's, and
    ``pairs``: every ``"base -> adapter"`` combination that occurs, with its count."""
    fixed: Counter[str] = Counter()
    broken: Counter[str] = Counter()
    every: Counter[str] = Counter()
    for base, adapter in pairs:
        every[f"{base} -> {adapter}"] += 1
        if adapter == "correct" and base != "correct":
            fixed[base] += 1
        elif base == "correct" and adapter != "correct":
            broken[adapter] += 1
    order = {k: i for i, k in enumerate(OUTCOMES)}

    def ranked(c: Counter[str]) -> dict[str, int]:
        return dict(sorted(c.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))

    pair_order = sorted(every, key=lambda p: tuple(order.get(s, len(order)) for s in p.split(" -> ")))
    return {"fixed": ranked(fixed), "broken": ranked(broken), "pairs": {p: every[p] for p in pair_order}}
