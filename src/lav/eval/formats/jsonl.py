"""lav's own JSON Lines format: one object per line, each a sample (`formats.rows`' rules).

A row has an image, an instruction, a ``bbox`` and optionally an ``id``; every other scalar field
(string, integer, boolean) is a grouping field. Boxes are ``[x1, y1, x2, y2]`` original pixels;
a file whose every box lies within [0, 1] holds fractions of the image, scaled by the row's
``image_size`` / ``img_size``.
"""

from __future__ import annotations

from pathlib import Path

from ... import jsonsafe
from ...files import read_text, reading
from ..entries import Entry
from ..samples import Sample
from .base import Format, Parsed, ReadOptions, ident, images_dir, no_files
from .rows import (
    IMAGE_FIELDS,
    INSTRUCTION_FIELDS,
    SIZE_FIELDS,
    are_fractions,
    check_past_image,
    group_names,
    to_pixels,
)


def read_jsonl(path: Path, images: Path, bbox: str | None = None) -> Parsed:
    """A JSON Lines file: one object per line (blank lines skipped). Boxes are [x1, y1, x2, y2]
    unless ``bbox`` is "xywh"; pixel boxes that end past their image are refused without it."""
    what = "JSON Lines file"
    text = read_text(path, what)
    rows: list[Entry] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        with reading(f"{path} line {lineno}", what, fix="fix or remove that line"):
            data = jsonsafe.loads(line)
        rows.append(Entry(path, len(rows), data, what, place=f"line {lineno}"))
    raw = [e.numbers("bbox") for e in rows]
    sizes = [e.size(*SIZE_FIELDS) for e in rows]
    fractions = are_fractions(raw)
    if bbox == "xywh":
        raw = [list(e.xywh_box("bbox", b)) for e, b in zip(rows, raw, strict=True)]
    if not fractions:
        check_past_image(f"JSON Lines file {path}", rows, raw, sizes, bbox)
    groups = group_names(rows)
    out = Parsed(group_fields=list(groups))
    swapped_total = 0
    for e, box, size in zip(rows, raw, sizes, strict=True):
        pixels, swapped = to_pixels(e, box, fractions, size)
        swapped_total += swapped
        out.samples.append(
            Sample(
                id=ident(e, path.stem),
                image=images / e.text(*IMAGE_FIELDS),
                instruction=e.text(*INSTRUCTION_FIELDS),
                target="box",
                box=pixels,
                image_size=size,
                groups=e.groups(groups),
                size_rule="stored" if size is None else "annotated",
            )
        )
    if fractions:
        out.notes.append("boxes were fractions of the image (every value in [0, 1]): scaled by image_size")
    else:
        how = "[x, y, w, h] (--bbox xywh)" if bbox == "xywh" else "[x1, y1, x2, y2]"
        out.notes.append(f"bbox read as {how} original-image pixels")
    if swapped_total:
        out.notes.append(f"{swapped_total} box(es) had reversed corners: swapped")
    out.notes.append(f"grouping fields: {', '.join(groups) if groups else 'none'}")
    return out


def _read(p: Path, options: ReadOptions) -> Parsed:
    if p.is_dir():
        found = sorted(p.glob("*.jsonl"))
        if len(found) != 1:
            raise no_files("JSON Lines", p, "exactly one *.jsonl")
        p = found[0]
    return read_jsonl(p, images_dir(options.images, [p.parent]), options.bbox)


FORMAT = Format(
    name="jsonl",
    layout="one object per line",
    read=_read,
    # Last: a folder with one .jsonl beside another benchmark's files is that benchmark.
    rank=90,
    by_name=lambda p: p.suffix == ".jsonl",
    by_layout=lambda p: len(list(p.glob("*.jsonl"))) == 1,
)
