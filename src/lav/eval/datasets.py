"""Load a GUI-grounding benchmark in any supported format into a `Dataset` of `Sample` records.

``load_dataset(path)`` detects the format from the structure (file names, then the fields every
entry has), reads it with the format's reader (one `Format` record per format, `lav.eval.formats`)
and returns boxes as ``(x1, y1, x2, y2)`` original-image pixels, with notes on what was detected.
Bad data raises `LavError` in one line naming the file and the entry.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import replace
from pathlib import Path

from ..errors import InputError, LavError
from ..files import check_path, read_json
from .demo_data import write_demo_benchmark
from .entries import BBOX_CONVENTIONS
from .formats import REGISTRY, Format, Parsed, ReadOptions
from .samples import Dataset, Sample, in_target

#: The formats by name, in the order they are offered (`lav.eval.formats.REGISTRY`).
FORMATS = tuple(f.name for f in REGISTRY)
_BY_NAME = {f.name: f for f in REGISTRY}
#: The order detection asks the formats in: most particular files first.
_DETECTION = sorted(REGISTRY, key=lambda f: f.rank)

_SUPPORTED = (
    "supported formats: "
    + ", ".join(f"{f.name} ({f.layout})" for f in REGISTRY)
    + "; pass --format to choose one"
)


def _unknown(path: Path, why: str) -> LavError:
    return LavError(f"cannot tell the benchmark format of {path} ({why}); {_SUPPORTED}")


def _by_fields(path: Path) -> Format:
    """The format of one JSON file, from the fields that all its entries share."""
    data = read_json(path, "annotation file", expect=(list, dict), fix="pass a benchmark annotation file")
    if not isinstance(data, list) or not data or not all(isinstance(d, dict) for d in data):
        raise _unknown(path, "it is not a non-empty JSON list of objects")
    common = frozenset(set.intersection(*(set(d) for d in data)))
    for fmt in _DETECTION:
        if fmt.by_fields(common, path):
            return fmt
    if {"instruction", "bbox"} <= common and common & {"image", "image_path", "img_filename"}:
        raise _unknown(path, "it is a JSON list of samples: write it as JSON Lines (.jsonl)")
    raise _unknown(path, f"its entries share only the fields {sorted(common)}")


def detect_format(path: str | os.PathLike) -> str:
    """The format (one of `FORMATS`) of the file or folder at ``path``, from names and fields."""
    p = check_path(path, "benchmark path", kind="file" if Path(path).is_file() else "dir")
    if p.is_file():
        for fmt in _DETECTION:
            if fmt.by_name(p):
                return fmt.name
        if p.suffix == ".json":
            return _by_fields(p).name
        raise _unknown(p, f"a {p.suffix or 'suffix-less'} file")
    for fmt in _DETECTION:
        if fmt.by_layout(p):
            return fmt.name
    found = {f.name for f in p.glob("*.json") if f.is_file()} | {f.name for f in p.glob("*.jsonl")}
    raise _unknown(p, f"files found: {sorted(found)[:8] or 'none'}")


def load_dataset(
    path: str | os.PathLike,
    images: str | os.PathLike | None = None,
    format: str | None = None,
    limit: int | None = None,
    cache: str | os.PathLike | None = None,
    bbox: str | None = None,
) -> Dataset:
    """The benchmark at ``path`` as a `Dataset` (format from `detect_format` unless given).

    ``images`` overrides where screenshots are looked up (default: the format's own layout, e.g. a
    sibling ``images/``); ``limit`` keeps the first N samples in file order; ``cache`` is where
    images embedded in a Hugging Face dataset are written (default: a new temporary folder).
    ``bbox`` ("xywh" / "xyxy"): how the boxes are written, for files whose boxes cannot tell
    (ScreenSpot, OSWorld-G, jsonl, hf; refused without it).
    Raises `LavError` for an unknown format, a malformed entry, an undecidable box convention or
    no samples.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise LavError(f"limit must be a positive whole number of samples, got {limit!r}")
    if format is not None and format not in FORMATS:
        raise LavError(f"unknown format {format!r}; {_SUPPORTED}")
    if bbox is not None and bbox not in BBOX_CONVENTIONS:
        raise LavError(f"--bbox must be xywh or xyxy, got {bbox!r}")
    p = check_path(path, "benchmark path", kind="dir" if Path(os.fspath(path)).is_dir() else "file")
    fmt = format or detect_format(p)
    options = ReadOptions(images=images, cache=None if cache is None else Path(cache), limit=limit, bbox=bbox)
    parsed = _BY_NAME[fmt].read(p, options)
    samples = _unique_ids(parsed)
    if limit is not None:
        samples = samples[:limit]
    if not samples:
        raise LavError(f"{p} holds no samples for format {fmt!r}; {_SUPPORTED}")
    notes = [f"format {fmt}" + (" (detected)" if format is None else " (given)"), *parsed.notes]
    if limit is not None:
        notes.append(f"limited to the first {len(samples)} sample(s)")
    return Dataset(
        name=p.stem if p.is_file() else p.name,
        format=fmt,
        samples=tuple(samples),
        notes=tuple(notes),
        group_fields=tuple(parsed.group_fields),
    )


def check_images(
    dataset: Dataset, images: str | os.PathLike | None = None, *, allow_missing: bool = True
) -> Dataset:
    """The one check of a dataset's screenshots, before a model loads (the readers leave them unchecked).

    Every screenshot missing is a wrong folder (a wrong ``--images``, a folder moved): refused with one
    line, how many and the first path. Some missing: refused the same way unless ``allow_missing``
    (``lav eval --allow-missing``), else a note says how many; those samples are scored wrong and
    counted as errors inside ``n``, never dropped (issue: nothing leaves the denominator silently)."""
    samples = dataset.samples
    found: dict[Path, bool] = {}
    missing = []
    for s in samples:
        path = Path(s.image)
        if path not in found:
            found[path] = path.is_file()
        if not found[path]:
            missing.append(path)
    if missing and len(missing) == len(samples):
        # Every screenshot missing is a wrong folder, not bad samples: an "accuracy -" run helps no one.
        where = f"--images {images}" if images is not None else f"the images folder of {dataset.name}"
        raise LavError(
            f"all {len(missing)} images of {dataset.name} are missing (the first: {missing[0]}); check "
            f"{where}, or pass --images DIR pointing at the folder that holds them"
        )
    if missing and not allow_missing:
        raise InputError(
            f"{len(missing)} of {len(samples)} samples' images are missing (first: {missing[0]}); "
            "fix --images, or pass --allow-missing to score them wrong and count them as errors"
        )
    if missing:
        note = (
            f"{len(missing)} of {len(samples)} images not found (the first: {missing[0]}): those samples "
            "are scored wrong and counted as errors"
        )
        return replace(dataset, notes=(*dataset.notes, note))
    return dataset


def _unique_ids(parsed: Parsed) -> list[Sample]:
    """Samples with ids made unique: a repeated id gets ``#2``, ``#3``... in file order (noted)."""
    counts = Counter(s.id for s in parsed.samples)
    repeated = {i for i, c in counts.items() if c > 1}
    if not repeated:
        return list(parsed.samples)
    seen: Counter[str] = Counter()
    taken = set(counts)
    out = []
    for s in parsed.samples:
        seen[s.id] += 1
        if s.id in repeated and seen[s.id] > 1:
            new = f"{s.id}#{seen[s.id]}"
            while new in taken:
                new += "'"
            taken.add(new)
            s = replace(s, id=new)
        out.append(s)
    parsed.notes.append(
        f"{len(repeated)} id(s) repeated in the data (e.g. {sorted(repeated)[0]!r}): suffixed #2, #3, ..."
    )
    return out


__all__ = [
    "FORMATS",
    "Dataset",
    "Sample",
    "check_images",
    "detect_format",
    "in_target",
    "load_dataset",
    "write_demo_benchmark",
]
