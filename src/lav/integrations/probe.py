"""A probe set: a few screenshots with their targets, analysed again and again as an adapter trains.

`load_probe` reads a probe given as a list of ``{"image", "instruction", "bbox"}`` dicts (``image``:
a path or a PIL image; ``bbox``: ``(x1, y1, x2, y2)`` original-image pixels, edges included; an
optional ``"id"``) or as a path in any format `lav eval` reads, into `lav.eval.Sample` records.
`score` turns the `Result`s of one analysis of the probe into the records of ``lav eval``
(`lav.eval.records.record`) and their summary (`lav.eval.stats.summarize`), and `scalars` flattens
that summary into the named numbers a training logger plots. Torch-free.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..eval.records import record
from ..eval.samples import Sample
from ..eval.stats import summarize
from ..result import Result

ProbeArg = str | os.PathLike | Sequence[Mapping[str, Any]]

_ITEM_KEYS = ("image", "instruction", "bbox", "id")


def load_probe(probe: ProbeArg, limit: int | None = None) -> list[Sample]:
    """The probe's samples, in order, with unique ids.

    A dict's ``image`` is kept as given (a path or a PIL image): `Sample.image` then holds a PIL
    image, which `lav.inputs.load_image` reads like a path.
    """
    if isinstance(probe, (str, os.PathLike)):
        from ..eval.datasets import load_dataset

        return list(load_dataset(probe, limit=limit).samples)
    if isinstance(probe, Mapping) or not isinstance(probe, Sequence):
        raise InputError(
            f"probe must be a list of {{image, instruction, bbox}} dicts or a path to a dataset, "
            f"got {type(probe).__name__}"
        )
    samples = []
    for n, item in enumerate(probe):
        if not isinstance(item, Mapping):
            raise InputError(f"probe item {n} is a {type(item).__name__}; give a dict with {_ITEM_KEYS}")
        unknown = sorted(set(item) - set(_ITEM_KEYS))
        missing = [k for k in ("image", "instruction", "bbox") if k not in item]
        if unknown or missing:
            raise InputError(
                f"probe item {n}: missing {missing}, unknown {unknown}; an item has image, instruction, "
                "bbox (x1, y1, x2, y2 original-image pixels) and optionally id"
            )
        box = _box(item["bbox"], n)
        image = item["image"]
        if isinstance(image, (str, os.PathLike)):
            image = Path(image)
        sample_id = str(item.get("id", f"probe-{n}"))
        samples.append(
            Sample(id=sample_id, image=image, instruction=str(item["instruction"]), target="box", box=box)
        )
    if not samples:
        raise InputError("the probe set is empty; give at least one {image, instruction, bbox}")
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        raise InputError("probe ids must be unique")
    return samples[:limit] if limit else samples


def _box(value: Any, n: int) -> tuple[float, float, float, float]:
    try:
        x1, y1, x2, y2 = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(
            f"probe item {n}: bbox must be four numbers (x1, y1, x2, y2), got {value!r}"
        ) from None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise InputError(f"probe item {n}: bbox has a non-finite number: {value!r}")
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def score(samples: Sequence[Sample], results: Sequence[Result]) -> tuple[list[dict], dict[str, Any]]:
    """Per-sample records (as in ``samples.jsonl`` of `lav eval`) and their summary."""
    records = [record(s, r) for s, r in zip(samples, results, strict=True)]
    return records, summarize(records, group_fields=())


def scalars(summary: Mapping[str, Any], prefix: str = "lav/") -> dict[str, float]:
    """``{tag: value}`` of one summary: click accuracy, then per map and layer the pointing game and
    the mass in box, for the adapter and (under ``base/``) the base model. Undefined values are left out.

    Tags: ``lav/click_accuracy``, ``lav/focus/pointing/layer_3``, ``lav/focus/mass/layer_3``,
    ``lav/base/click_accuracy``, ...
    """
    out: dict[str, float] = {}
    runs = [("", summary)]
    if summary.get("base"):
        runs.append(("base/", summary["base"]))
    for run_prefix, s in runs:
        if s.get("accuracy") is not None:
            out[f"{prefix}{run_prefix}click_accuracy"] = float(s["accuracy"])
        for kind, rows in (s.get("layers") or {}).items():
            for row in rows:
                for metric in ("pointing", "mass"):
                    value = row.get(metric)
                    if value is not None:
                        out[f"{prefix}{run_prefix}{kind}/{metric}/layer_{row['layer']}"] = float(value)
    return out
