"""One benchmark sample and its `Result` -> the plain record written as a line of ``samples.jsonl``.

Torch-free: scoring reads the answer, the click and the maps of a `Result` (also one loaded from
disk). A record holds everything the summary needs, so the summary is a function of the records.

Record keys: ``id``, ``instruction``, ``target`` (box / polygon / negative / refusal), ``bbox``
[x1, y1, x2, y2] original pixels (null for negative / refusal), ``image_size`` [w, h], ``groups``,
``error`` (null, or why the sample could not be run), ``chance`` (box area / image area), ``layers``
(``focus``: decoder layers, ``edge``: vision blocks) and the outcome of the run: ``response``,
``click`` {x, y} or null, ``click_error``, ``correct``, ``wrong_format``, ``convention``,
``conventions`` (correct had the answer been read in each convention), ``maps`` (per layer:
``pointing``, ``mass``, and for the focus ``image_share``) and ``heads`` (L x H: 1 where that head's
maximum is on the target). ``base``: the same outcome with the adapter disabled, or null.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..coords import CONVENTIONS, parse_answer, to_click
from ..metrics import chance_level, mass_in_box
from ..result import Result
from .datasets import Sample, in_target
from .layout import safe_id as safe_id  # re-exported: callers read it from here

#: Targets that are correct only when the model does not click (ScreenSpot-Pro negatives,
#: OSWorld-G refusals).
NO_CLICK_TARGETS = ("negative", "refusal")


def _has_target(sample: Sample) -> bool:
    return sample.target not in NO_CLICK_TARGETS and sample.box is not None


def _scored(sample: Sample, x: float | None, y: float | None) -> bool:
    if sample.target in NO_CLICK_TARGETS:
        return x is None
    return x is not None and y is not None and bool(in_target(sample, x, y))


def top_cell_centre(values: np.ndarray, image_size: tuple[int, int]) -> tuple[float, float]:
    """Centre, in original-image pixels, of the map's largest cell (the first in raster order on ties):
    the point `lav.metrics.pointing_game` tests."""
    arr = np.asarray(values, dtype=np.float64)
    r, c = np.unravel_index(int(np.argmax(arr)), arr.shape)
    width, height = image_size
    return (c + 0.5) * width / arr.shape[1], (r + 0.5) * height / arr.shape[0]


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _map_metrics(sample: Sample, layers: np.ndarray, size: tuple[int, int]) -> dict[str, Any]:
    """Pointing game and mass in box of each layer's map ``layers`` (L, rows, cols)."""
    if not _has_target(sample):
        return {"pointing": None, "mass": None}
    # Pointing scores the top cell against the target as the click is scored (a polygon as a
    # polygon); mass in box needs a box, so a polygon's bounding box stands in for it.
    return {
        "pointing": [_scored(sample, *top_cell_centre(m, size)) for m in layers],
        "mass": [_number(mass_in_box(m, sample.box, size)) for m in layers],
    }


def _heads(sample: Sample, res: Result) -> list[list[int]] | None:
    """L x H: 1 where that decoder head's focus (``focus_heads``) has its maximum on the target."""
    focus = res.maps.get("focus")
    heads = None if focus is None else focus.arrays.get("focus_heads")
    if heads is None or not _has_target(sample):
        return None
    size = res.image_size
    return [[int(_scored(sample, *top_cell_centre(m, size))) for m in layer] for layer in heads]


def _conventions(sample: Sample, res: Result) -> dict[str, bool]:
    """Correct or not had the answer been read in each convention (the fine-tuning-bug check)."""
    parsed = parse_answer(res.response)
    out = {}
    for convention in CONVENTIONS:
        if parsed is None:
            out[convention] = _scored(sample, None, None)
            continue
        click = to_click(parsed, convention, res.resized_size, res.image_size)
        out[convention] = _scored(sample, click.x, click.y)
    return out


def outcome(sample: Sample, res: Result, extra_maps: Sequence[str] = ()) -> dict[str, Any]:
    """The run-dependent part of a record: the answer, its scoring and the maps' metrics
    (``extra_maps``: the methods asked for with ``--maps``, one map each)."""
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
    return {
        "response": res.response,
        "click": None if click is None else {"x": float(x), "y": float(y)},
        "click_error": res.click_error,
        "correct": _scored(sample, x, y),
        "wrong_format": click is None and sample.target not in NO_CLICK_TARGETS,
        "convention": res.coords_convention,
        "conventions": _conventions(sample, res),
        "maps": maps,
        "heads": _heads(sample, res),
    }


def _head(sample: Sample) -> dict[str, Any]:
    return {
        "id": sample.id,
        "instruction": sample.instruction,
        "target": sample.target,
        "bbox": None if sample.box is None else [float(v) for v in sample.box],
        "groups": dict(sample.groups),
    }


def record(sample: Sample, res: Result, extra_maps: Sequence[str] = ()) -> dict[str, Any]:
    """The ``samples.jsonl`` line of a sample that ran (with ``res.base`` when compared), scoring
    ``extra_maps`` beside edge and focus."""
    size = res.image_size
    out = _head(sample)
    out["image_size"] = [int(size[0]), int(size[1])]
    out["error"] = None
    out["chance"] = chance_level(sample.box, size) if _has_target(sample) else None
    out["layers"] = {
        name: [int(i) for i in res.maps[name].layers] for name in ("focus", "edge") if name in res.maps
    }
    out.update(outcome(sample, res, extra_maps))
    out["base"] = None if res.base is None else outcome(sample, res.base, extra_maps)
    return out


def error_record(sample: Sample, reason: str) -> dict[str, Any]:
    """The ``samples.jsonl`` line of a sample that could not be run, and why."""
    out = _head(sample)
    out.update({"image_size": None, "error": reason, "response": None, "click": None, "correct": False})
    out.update({"wrong_format": False, "base": None})
    return out
