"""Datasets in Hugging Face's on-disk formats: a ``save_to_disk`` folder, a ``.parquet`` file, or a
folder of parquet files (the layout of a Hub dataset such as ``rootsautomation/ScreenSpot``).

Rows follow `formats.rows`: an image column (``datasets.Image``, stored as ``{bytes, path}``, or a
path string), ``instruction``, ``bbox``, optional ``id``, and scalar grouping columns. Harnesses
disagree on what the Hub copies' boxes are (GUI-Actor's ``eval/screenSpot.py`` reads them as
[x1, y1, x2, y2] and divides by the image size only when a value exceeds 1), so the boxes decide:
fractions when every value lies in [0, 1], and [x, y, w, h] only when a box rules out
[x1, y1, x2, y2]. Embedded images are written to files in ``cache`` (only the kept rows', once).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import LavError
from ...files import reading
from ..entries import Entry, box_convention, describe, ordered, scale
from ..samples import Sample
from .base import Format, Parsed, ReadOptions, ident, images_dir
from .rows import (
    INSTRUCTION_FIELDS,
    NOT_GROUPS,
    SIZE_FIELDS,
    are_fractions,
    check_past_image,
    group_names,
)

_WHAT = "dataset"
_PARQUET = re.compile(r"^(?P<split>.+?)(-\d{5}-of-\d{5})?\.parquet$")


@dataclass
class _Part:
    """One split of the dataset: its rows without the image column, and a way to read that column."""

    split: str
    source: Path
    meta: list[dict[str, Any]]
    image_column: str | None
    batches: Any  # () -> Iterator of lists of image cells, in row order


def is_hf(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".parquet"
    if any((path / n).is_file() for n in ("dataset_info.json", "state.json", "dataset_dict.json")):
        return True
    return bool(_parquet_files(path))


def _parquet_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.parquet") if p.is_file())


def _image_column(schema: Any) -> str | None:
    import pyarrow as pa

    for f in schema:
        if pa.types.is_struct(f.type) and {"bytes", "path"} <= {c.name for c in f.type}:
            return f.name
    for name in ("image", "img", "screenshot"):
        if name in schema.names and pa.types.is_string(schema.field(name).type):
            return name
    return None


def _parts(path: Path) -> list[_Part]:
    import pyarrow.parquet as pq

    if path.is_file() or not any(
        (path / n).is_file() for n in ("dataset_info.json", "state.json", "dataset_dict.json")
    ):
        files = [path] if path.is_file() else _parquet_files(path)
        parts = []
        for f in files:
            with reading(f, "parquet file"):
                pf = pq.ParquetFile(f)
                schema = pf.schema_arrow
                image = _image_column(schema)
                meta = pf.read(columns=[n for n in schema.names if n != image]).to_pylist()

            def batches(pf: Any = pf, image: str | None = image) -> Iterator[list[Any]]:
                for batch in pf.iter_batches(columns=[image], batch_size=16):
                    yield batch.column(0).to_pylist()

            m = _PARQUET.match(f.name)
            parts.append(_Part(m.group("split") if m else f.stem, f, meta, image, batches))
        return parts
    import datasets

    with reading(path, "dataset folder", fix="pass the folder that Dataset.save_to_disk wrote"):
        loaded = datasets.load_from_disk(str(path))
    splits = loaded.items() if isinstance(loaded, datasets.DatasetDict) else [(path.name, loaded)]
    parts = []
    for split, ds in splits:
        table = ds.with_format("arrow")[:]
        image = _image_column(table.schema)
        meta = table.drop_columns([image] if image else []).to_pylist()

        def batches(table: Any = table, image: str | None = image) -> Iterator[list[Any]]:
            for batch in table.select([image]).to_batches(max_chunksize=16):
                yield batch.column(0).to_pylist()

        parts.append(_Part(split, path, meta, image, batches))
    return parts


def read_hf(
    path: Path, images: Path | None, cache: Path | None, limit: int | None, bbox: str | None = None
) -> Parsed:
    """The rows of the dataset at ``path``, the first ``limit`` of them with their images as files.
    ``bbox`` ("xywh" / "xyxy") overrides the detected box convention; without it, pixel boxes that
    end past their image are refused."""
    parts = _parts(path)
    rows: list[tuple[_Part, Entry, int]] = []
    for part in parts:
        for i, data in enumerate(part.meta):
            rows.append(
                (part, Entry(part.source, len(rows), data, _WHAT, place=f"row {i} of {part.split}"), i)
            )
    if not rows:
        raise LavError(f"dataset {path} has no rows; pass a dataset with samples")
    if any(part.image_column is None for part in parts):
        raise LavError(
            f"dataset {path} has no image column (a datasets.Image feature or an 'image' path column)"
        )
    raw = [e.numbers("bbox") for _, e, _ in rows]
    for _, e, _ in rows:
        e.text(*INSTRUCTION_FIELDS)
    fractions = are_fractions(raw)
    if bbox is not None:
        convention, evidence = bbox, "given with --bbox"
    else:
        convention, evidence = box_convention(
            raw, [None] * len(raw), default="xyxy", where=f"dataset {path}", unit=1.0 if fractions else None
        )
    entries = [e for _, e, _ in rows]
    groups = [g for g in group_names(entries) if g not in NOT_GROUPS]
    multi = len({p.split for p in parts}) > 1
    out = Parsed(group_fields=(["split"] if multi else []) + groups)
    kind = "fractions of the image" if fractions else "pixels"
    out.notes.append(f"bbox read as {describe(convention)} {kind} ({evidence})")
    if fractions:
        out.notes.append("boxes were fractions of the image: scaled by each image's size")
    kept = rows if limit is None else rows[:limit]
    folder = _cache_folder(cache, out)
    cells = _image_cells(parts, len(kept))
    for (part, e, i), box, cell in zip(kept, raw, cells, strict=False):
        image, size = _materialise(
            cell, e, part, i, folder, images or (path if path.is_dir() else path.parent)
        )
        size = size or e.size(*SIZE_FIELDS)
        if convention == "xywh":
            box = list(e.xywh_box("bbox", box))
        if fractions:
            if size is None:
                raise e.error(f"is {box!r}, fractions of the image, but the image cannot be read", "bbox")
            box = list(scale(box, size))
        if not fractions:
            check_past_image(f"dataset {path}", [e], [box], [size], bbox)
        pixels, _ = ordered(box)
        out.samples.append(
            Sample(
                id=ident(e, part.split),
                image=image,
                instruction=e.text(*INSTRUCTION_FIELDS),
                target="box",
                box=pixels,
                image_size=size,
                groups={**({"split": part.split} if multi else {}), **e.groups(groups)},
            )
        )
    out.notes.append(f"grouping fields: {', '.join(out.group_fields) or 'none'}")
    return out


def _cache_folder(cache: Path | None, out: Parsed) -> Path:
    if cache is None:
        cache = Path(tempfile.mkdtemp(prefix="lav-eval-images-"))
        out.notes.append(f"embedded images written to {cache} (pass cache= to keep them elsewhere)")
    else:
        out.notes.append(f"embedded images written to {cache}")
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LavError(
            f"cannot create the image cache folder {cache} ({exc.strerror}); pick another"
        ) from exc
    return cache


def _image_cells(parts: list[_Part], n: int) -> Iterator[Any]:
    left = n
    for part in parts:
        for batch in part.batches():
            for cell in batch:
                if left <= 0:
                    return
                left -= 1
                yield cell


def _materialise(
    cell: Any, e: Entry, part: _Part, row: int, folder: Path, base: Path
) -> tuple[Path, tuple[int, int] | None]:
    """The image file of one row (written into ``folder`` when embedded) and its size if readable."""
    from PIL import Image

    if isinstance(cell, str) or (isinstance(cell, dict) and cell.get("bytes") is None and cell.get("path")):
        rel = cell if isinstance(cell, str) else cell["path"]
        path = (base / rel).resolve()
        try:
            with Image.open(path) as im:
                return path, im.size
        except (OSError, ValueError):
            return path, None
    if not isinstance(cell, dict) or not isinstance(cell.get("bytes"), bytes):
        raise e.error("holds no image (neither bytes nor a path)", part.image_column)
    data: bytes = cell["bytes"]
    size, ext = None, Path(cell.get("path") or "").suffix or ".bin"
    try:
        with Image.open(io.BytesIO(data)) as im:
            size, ext = im.size, "." + (im.format or ext.lstrip(".")).lower().replace("jpeg", "jpg")
    except (OSError, ValueError):
        pass  # left for the evaluation to report as this sample's error
    name = re.sub(r"[^\w.-]", "_", part.split)
    target = folder / f"{name}-{row:06d}{ext}"
    try:
        if not (target.is_file() and target.stat().st_size == len(data) and target.read_bytes() == data):
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
    except OSError as exc:
        raise LavError(
            f"cannot write image {target} ({exc.strerror}); free space or pick another cache"
        ) from exc
    return target.resolve(), size


def _read(p: Path, options: ReadOptions) -> Parsed:
    base = None if options.images is None else images_dir(options.images, [])
    return read_hf(p, base, options.cache, options.limit, options.bbox)


FORMAT = Format(
    name="hf",
    layout="a save_to_disk folder or parquet",
    read=_read,
    # After the benchmarks' own layouts: any folder holding a .parquet file somewhere counts.
    rank=80,
    by_name=lambda p: p.suffix == ".parquet",
    by_layout=is_hf,
)
