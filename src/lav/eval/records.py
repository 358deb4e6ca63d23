"""One benchmark sample and its `Result` -> the plain record written as a line of ``samples.jsonl``.

Torch-free: scoring reads the answer, the click and the maps of a `Result` (also one loaded from
disk). A record holds everything the summary needs, so the summary is a function of the records.

Record keys: ``id``, ``instruction``, ``target`` (box / polygon / negative / refusal), ``bbox``
[x1, y1, x2, y2] annotated pixels (null for negative / refusal), ``annotated_size`` [w, h] (the size
the box was drawn on, null when the data does not say), ``size_rule`` (what the official script
divides the box by: ``annotated`` or ``stored``), ``image_size`` [w, h] (the stored image), ``groups``,
``error`` (null, or why the sample could not be run), ``chance`` (box area / image area), ``layers``
(``focus``: decoder layers, ``edge``: vision blocks) and the outcome of the run: ``response``,
``click`` {x, y} or null, ``click_error``, ``refused`` (the final answer is a refusal: a phrase or a
sentinel such as [-1, -1]; not a wrong format), ``correct`` (by the official rule: `score`),
``wrong_format`` (neither a point nor a refusal, on any sample), ``convention``,
``conventions`` (correct had the answer been read in each convention), ``maps`` (per layer:
``pointing``, ``mass``, and for the focus ``image_share``) and ``heads`` (L x H: 1 where that head's
maximum is on the target); ``outcome`` (one of `lav.eval.taxonomy.OUTCOMES`), ``confidence`` (the
click's digit confidence, `lav.confidence`, or null), ``focus_peak`` [x, y] (the focus's top cell
centre, original pixels), ``focus_mass`` (the focus's mass in the box) and ``looked_right`` (that
peak on the target; null without a target). ``base``: the same outcome with the adapter disabled, or null.
A forced answer (``lav eval --responses``) adds ``agreement``: transformers' log-probability of it
and where its greedy choice differs (`lav.agreement`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..coords import CONVENTIONS, AnswerRules, parse_answer, to_click
from ..metrics import chance_level, mass_in_box
from ..result import Result
from .datasets import Sample
from .layout import safe_id as safe_id  # re-exported: callers read it from here
from .samples import official_hit
from .taxonomy import classify

#: Targets that are correct only when the model does not click (ScreenSpot-Pro negatives,
#: OSWorld-G refusals).
NO_CLICK_TARGETS = ("negative", "refusal")


def _has_target(sample: Sample) -> bool:
    return sample.target not in NO_CLICK_TARGETS and sample.box is not None


def _hit(sample: Sample, x: float | None, y: float | None, size: tuple[int, int]) -> bool:
    """A click at ``(x, y)`` (stored-image pixels; None: no click) on the target, by the official
    rule (`official_hit`): never for a sample without a target."""
    if x is None or y is None or not _has_target(sample):
        return False
    return official_hit(sample, x, y, size)


def score(sample: Sample, x: float | None, y: float | None, refused: bool, size: tuple[int, int]) -> bool:
    """Right by the official rule: a negative / refusal sample only when the answer is a refusal
    (ScreenSpot-Pro ``eval_screenspot_pro.py`` l. 154-160: ``result == "negative"``; OSWorld-G's
    refusal samples); any other sample only when the click hits. A garbled answer (neither a point
    nor a refusal) is wrong on both."""
    if sample.target in NO_CLICK_TARGETS:
        return refused
    return _hit(sample, x, y, size)


def top_cell_centre(values: np.ndarray, image_size: tuple[int, int]) -> tuple[float, float]:
    """Centre, in original-image pixels, of the map's largest cell (the first in raster order on ties):
    the point `lav.metrics.pointing_game` tests."""
    arr = np.asarray(values, dtype=np.float64)
    r, c = np.unravel_index(int(np.argmax(arr)), arr.shape)
    width, height = image_size
    return (c + 0.5) * width / arr.shape[1], (r + 0.5) * height / arr.shape[0]


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def answer_fields(
    sample: Sample, x: float | None, y: float | None, refused: bool, size: tuple[int, int]
) -> dict[str, bool]:
    """``correct``, ``wrong_format`` and ``refused`` of one answer: a click at ``(x, y)`` in pixels of
    the stored image of ``size`` (None: no click), or a refusal."""
    return {
        "refused": refused,
        "correct": score(sample, x, y, refused, size),
        # Neither a point nor a refusal, on any sample (a negative included): the official scripts'
        # ``wrong_format`` (ScreenSpot-Pro l. 146-147, 159-160; UI-Vision, SeeClick's except branch).
        "wrong_format": x is None and not refused,
    }


def _map_metrics(sample: Sample, layers: np.ndarray, size: tuple[int, int]) -> dict[str, Any]:
    """Pointing game and mass in box of each layer's map ``layers`` (L, rows, cols)."""
    if not _has_target(sample):
        return {"pointing": None, "mass": None}
    # Pointing scores the top cell against the target as the click is scored (a polygon as a
    # polygon); mass in box needs a box, so a polygon's bounding box stands in for it.
    return {
        "pointing": [_hit(sample, *top_cell_centre(m, size), size) for m in layers],
        "mass": [_number(mass_in_box(m, sample.box, size)) for m in layers],
    }


def _heads(sample: Sample, res: Result) -> list[list[int]] | None:
    """L x H: 1 where that decoder head's focus (``focus_heads``) has its maximum on the target."""
    focus = res.maps.get("focus")
    heads = None if focus is None else focus.arrays.get("focus_heads")
    if heads is None or not _has_target(sample):
        return None
    size = res.image_size
    return [[int(_hit(sample, *top_cell_centre(m, size), size)) for m in layer] for layer in heads]


#: Refusals were decided when the result was made (with the model's rules, `Result.refused`); the
#: convention check re-reads only the click of the same final answer.
_NO_REFUSALS = AnswerRules(refusal_phrases=(), refusal_sentinels=())


def conventions_correct(sample: Sample, res: Result) -> dict[str, bool]:
    """Correct or not had the answer been read in each convention (the fine-tuning-bug check)."""
    parsed = None if res.refused else parse_answer(res.response, _NO_REFUSALS)
    out = {}
    size = res.image_size
    for convention in CONVENTIONS:
        if parsed is None:
            out[convention] = score(sample, None, None, res.refused, size)
            continue
        click = to_click(parsed, convention, res.resized_size, size)
        out[convention] = score(sample, click.x, click.y, False, size)
    return out


def _focus_fields(sample: Sample, res: Result) -> dict[str, Any]:
    """``focus_peak`` (the focus's top cell centre, original pixels), ``focus_mass`` (its mass in the
    target box) and ``looked_right`` (that peak on the target: `lav.eval.taxonomy`)."""
    if "focus" not in res.maps:
        return {"focus_peak": None, "focus_mass": None, "looked_right": None}
    size = res.image_size
    peak = top_cell_centre(res.focus, size)
    target = _has_target(sample)
    return {
        "focus_peak": [float(peak[0]), float(peak[1])],
        "focus_mass": _number(mass_in_box(res.focus, sample.box, size)) if target else None,
        "looked_right": _hit(sample, *peak, size) if target else None,
    }


def outcome(
    sample: Sample, res: Result, extra_maps: Sequence[str] = (), others: Sequence[Sample] = ()
) -> dict[str, Any]:
    """The run-dependent part of a record: the answer, its scoring and the maps' metrics
    (``extra_maps``: the methods asked for with ``--maps``, one map each); ``others``: the other
    samples of the same screenshot (`lav.eval.taxonomy.classify`)."""
    click = res.click
    x, y = (None, None) if click is None else (click.x, click.y)
    maps: dict[str, Any] = {}
    size = res.image_size
    if "focus" in res.maps:
        focus = res.maps["focus"]
        maps["focus"] = _map_metrics(sample, focus.arrays["focus_layers"], size)
        share = focus.arrays.get("image_share")
        maps["focus"]["image_share"] = (
            None if share is None or share.size == 0 else [float(v) for v in share.mean(axis=1)]
        )
    if "edge" in res.maps:
        maps["edge"] = _map_metrics(sample, res.maps["edge"].arrays["edge_layers"], size)
    for name in extra_maps:
        maps[name] = _map_metrics(sample, np.asarray(res.maps[name].values)[None], size)
    fields = answer_fields(sample, x, y, res.refused, size)
    kind = classify(sample, x, y, refused=res.refused, correct=fields["correct"], size=size, others=others)
    return {
        "response": res.response,
        "click": None if click is None else {"x": float(x), "y": float(y)},
        "click_error": res.click_error,
        **fields,
        "outcome": kind,
        "confidence": None if click is None else click.confidence,
        **_focus_fields(sample, res),
        "convention": res.coords_convention,
        "conventions": conventions_correct(sample, res),
        "maps": maps,
        "heads": _heads(sample, res),
        # A forced answer (lav eval --responses): transformers' agreement with it (`lav.agreement`).
        **({} if res.agreement is None else {"agreement": res.agreement}),
    }


def sample_head(sample: Sample) -> dict[str, Any]:
    return {
        "id": sample.id,
        "instruction": sample.instruction,
        "target": sample.target,
        "bbox": None if sample.box is None else [float(v) for v in sample.box],
        "annotated_size": None if sample.image_size is None else [int(v) for v in sample.image_size],
        "size_rule": sample.size_rule,
        "groups": dict(sample.groups),
    }


def record(
    sample: Sample, res: Result, extra_maps: Sequence[str] = (), others: Sequence[Sample] = ()
) -> dict[str, Any]:
    """The ``samples.jsonl`` line of a sample that ran (with ``res.base`` when compared), scoring
    ``extra_maps`` beside edge and focus; ``others``: the other samples of its screenshot."""
    size = res.image_size
    out = sample_head(sample)
    out["image_size"] = [int(size[0]), int(size[1])]
    out["error"] = None
    out["chance"] = chance_level(sample.box, size) if _has_target(sample) else None
    out["layers"] = {
        name: [int(i) for i in res.maps[name].layers] for name in ("focus", "edge") if name in res.maps
    }
    out.update(outcome(sample, res, extra_maps, others))
    out["base"] = None if res.base is None else outcome(sample, res.base, extra_maps, others)
    return out


def error_record(sample: Sample, reason: str) -> dict[str, Any]:
    """The ``samples.jsonl`` line of a sample that could not be run, and why."""
    out = sample_head(sample)
    # Scored wrong and kept in n (no official script drops a sample; SeeClick stops on a missing
    # image, screenspot_test.py l. 63-65): ``errors`` in the summary counts them.
    out.update({"image_size": None, "error": reason, "response": None, "click": None, "correct": False})
    out.update({"refused": False, "wrong_format": False, "outcome": "error", "base": None})
    return out
