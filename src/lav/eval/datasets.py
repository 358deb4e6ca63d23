"""Load a GUI-grounding benchmark in any supported format into a `Dataset` of `Sample` records.

``load_dataset(path)`` detects the format from the structure (file names, then the fields every
entry has), reads it with the format's reader (`formats.benchmarks`, `formats.rows`, `formats.hf`)
and returns boxes as ``(x1, y1, x2, y2)`` original-image pixels, with notes on what was detected.
Bad data raises `LavError` in one line naming the file and the entry.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import replace
from pathlib import Path

from ..errors import LavError
from ..files import check_path, read_json
from .demo_data import write_demo_benchmark
from .formats.benchmarks import (
    Parsed,
    no_files,
    read_osworld_g,
    read_screenspot,
    read_screenspot_pro,
    read_ui_vision,
)
from .formats.hf import is_hf, read_hf
from .formats.rows import read_jsonl
from .samples import Dataset, Sample, in_target

FORMATS = ("screenspot", "screenspot-pro", "osworld-g", "ui-vision", "jsonl", "hf")

_SUPPORTED = (
    "supported formats: screenspot (screenspot_*.json), screenspot-pro (a folder with annotations/ "
    "and images/), osworld-g (OSWorld-G.json), ui-vision (element_grounding_*.json), jsonl (one "
    "object per line), hf (a save_to_disk folder or parquet); pass --format to choose one"
)


def _unknown(path: Path, why: str) -> LavError:
    return LavError(f"cannot tell the benchmark format of {path} ({why}); {_SUPPORTED}")


def _json_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if p.is_file())


def _by_fields(path: Path) -> str:
    """The format of one JSON file, from the fields that all its entries share."""
    data = read_json(path, "annotation file", expect=(list, dict), fix="pass a benchmark annotation file")
    if not isinstance(data, list) or not data or not all(isinstance(d, dict) for d in data):
        raise _unknown(path, "it is not a non-empty JSON list of objects")
    common = set.intersection(*(set(d) for d in data))
    if {"box_type", "box_coordinates"} <= common:
        return "osworld-g"
    if {"prompt_to_evaluate", "bbox", "image_path"} <= common:
        return "ui-vision"
    if {"img_filename", "bbox", "instruction"} <= common:
        pro = "application" in common or path.parent.name == "annotations"
        return "screenspot-pro" if pro else "screenspot"
    if {"instruction", "bbox"} <= common and common & {"image", "image_path", "img_filename"}:
        raise _unknown(path, "it is a JSON list of samples: write it as JSON Lines (.jsonl)")
    raise _unknown(path, f"its entries share only the fields {sorted(common)}")


def detect_format(path: str | os.PathLike) -> str:
    """The format (one of `FORMATS`) of the file or folder at ``path``, from names and fields."""
    p = check_path(path, "benchmark path", kind="file" if Path(path).is_file() else "dir")
    if p.is_file():
        name = p.name.lower()
        if p.suffix == ".parquet":
            return "hf"
        if p.suffix == ".jsonl":
            return "jsonl"
        if name.startswith("osworld-g") and p.suffix == ".json":
            return "osworld-g"
        if name.startswith("element_grounding_") and p.suffix == ".json":
            return "ui-vision"
        if name.startswith("screenspot_") and p.suffix == ".json":
            return "screenspot"
        if p.suffix == ".json":
            return _by_fields(p)
        raise _unknown(p, f"a {p.suffix or 'suffix-less'} file")
    if (p / "annotations").is_dir() and _json_files(p / "annotations"):
        return "screenspot-pro"
    if _uivision_files(p):
        return "ui-vision"
    if _osworld_files(p):
        return "osworld-g"
    if _screenspot_files(p):
        return "screenspot"
    if is_hf(p):
        return "hf"
    jsonl = sorted(p.glob("*.jsonl"))
    if len(jsonl) == 1:
        return "jsonl"
    found = {f.name for f in _json_files(p)} | {f.name for f in jsonl}
    raise _unknown(p, f"files found: {sorted(found)[:8] or 'none'}")


def _screenspot_files(folder: Path) -> list[Path]:
    return [f for f in _json_files(folder) if f.name.startswith("screenspot_")]


def _osworld_files(folder: Path) -> list[Path]:
    files = {f.name: f for f in _json_files(folder) if f.name.startswith("OSWorld-G")}
    # The refined release re-annotates the same samples: one of the two, never both.
    for name in ("OSWorld-G_refined.json", "OSWorld-G.json"):
        if name in files:
            return [files[name]]
    return sorted(files.values())


def _uivision_files(folder: Path) -> list[Path]:
    for where in (folder, folder / "element_grounding", folder / "annotations" / "element_grounding"):
        files = [f for f in _json_files(where) if f.name.startswith("element_grounding_")]
        if files:
            return files
    return []


def _images_dir(images: str | os.PathLike | None, candidates: list[Path]) -> Path:
    if images is not None:
        return check_path(images, "images folder", kind="dir", fix="pass --images DIR").resolve()
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return candidates[-1].resolve()


def _read(
    fmt: str, p: Path, images: str | os.PathLike | None, cache: Path | None, limit: int | None
) -> Parsed:
    folder = p if p.is_dir() else p.parent
    if fmt == "screenspot":
        files = (_screenspot_files(p) or _json_files(p)) if p.is_dir() else [p]
        if not files:
            raise no_files("ScreenSpot", p, "screenspot_*.json")
        roots = [folder / "images", folder / "screenspotv2_image", folder]
        return read_screenspot(files, _images_dir(images, roots))
    if fmt == "screenspot-pro":
        if p.is_dir():
            root = p if (p / "annotations").is_dir() else p.parent
            files = _json_files(root / "annotations") if (root / "annotations").is_dir() else _json_files(p)
        else:
            root, files = (p.parent.parent if p.parent.name == "annotations" else p.parent), [p]
        if not files:
            raise no_files("ScreenSpot-Pro", p, "annotations/*.json")
        return read_screenspot_pro(files, _images_dir(images, [root / "images", root]))
    if fmt == "osworld-g":
        files = _osworld_files(p) if p.is_dir() else [p]
        if not files:
            raise no_files("OSWorld-G", p, "OSWorld-G.json")
        return read_osworld_g(files, _images_dir(images, [folder / "images", folder]))
    if fmt == "ui-vision":
        files = (_uivision_files(p) or _json_files(p)) if p.is_dir() else [p]
        if not files:
            raise no_files("UI-Vision", p, "element_grounding_*.json")
        # Official layout: <root>/annotations/element_grounding/*.json beside <root>/images.
        roots = [files[0].parent, *files[0].parent.parents][:4]
        return read_ui_vision(files, _images_dir(images, [r / "images" for r in roots] + [folder]))
    if fmt == "jsonl":
        if p.is_dir():
            found = sorted(p.glob("*.jsonl"))
            if len(found) != 1:
                raise no_files("JSON Lines", p, "exactly one *.jsonl")
            p = found[0]
        return read_jsonl(p, _images_dir(images, [p.parent]))
    assert fmt == "hf"
    base = None if images is None else _images_dir(images, [])
    return read_hf(p, base, cache, limit)


def load_dataset(
    path: str | os.PathLike,
    images: str | os.PathLike | None = None,
    format: str | None = None,
    limit: int | None = None,
    cache: str | os.PathLike | None = None,
) -> Dataset:
    """The benchmark at ``path`` as a `Dataset` (format from `detect_format` unless given).

    ``images`` overrides where screenshots are looked up (default: the format's own layout, e.g. a
    sibling ``images/``); ``limit`` keeps the first N samples in file order; ``cache`` is where
    images embedded in a Hugging Face dataset are written (default: a new temporary folder).
    Raises `LavError` for an unknown format, a malformed entry or no samples.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise LavError(f"limit must be a positive whole number of samples, got {limit!r}")
    if format is not None and format not in FORMATS:
        raise LavError(f"unknown format {format!r}; {_SUPPORTED}")
    p = check_path(path, "benchmark path", kind="dir" if Path(os.fspath(path)).is_dir() else "file")
    fmt = format or detect_format(p)
    parsed = _read(fmt, p, images, None if cache is None else Path(cache), limit)
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


def check_images(dataset: Dataset, images: str | os.PathLike | None = None) -> Dataset:
    """Refuse a dataset none of whose screenshots exist (a wrong ``--images``, a folder moved): one
    line with how many and the first path, before a model loads. When only some are missing, a note
    says how many (those samples are recorded as errors). The readers leave images unchecked."""
    samples = dataset.samples
    missing = [s.image for s in samples if not Path(s.image).is_file()]
    if missing and len(missing) == len(samples):
        # Every screenshot missing is a wrong folder, not bad samples: an "accuracy -" run helps no one.
        where = f"--images {images}" if images is not None else f"the images folder of {dataset.name}"
        raise LavError(
            f"all {len(missing)} images of {dataset.name} are missing (the first: {missing[0]}); check "
            f"{where}, or pass --images DIR pointing at the folder that holds them"
        )
    if missing:
        note = (
            f"{len(missing)} of {len(samples)} images are missing (the first: {missing[0]}); "
            "those samples are recorded as errors"
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
