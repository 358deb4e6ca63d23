"""Flat rows, one sample each: lav's own JSON Lines format, and the shared rules that the Hugging Face
reader (`formats.hf`) applies to its rows too.

A row has an image, an instruction, a ``bbox`` and optionally an ``id``; every other scalar field
(string, integer, boolean) is a grouping field. Boxes are ``[x1, y1, x2, y2]`` original pixels;
a file whose every box lies within [0, 1] holds fractions of the image, scaled by the row's
``image_size`` / ``img_size``.
"""

from __future__ import annotations

from pathlib import Path

from ... import jsonsafe
from ...files import read_text, reading
from ..entries import Entry, ambiguous, ordered, past_image, scale
from ..samples import Box, Sample
from .benchmarks import Parsed

IMAGE_FIELDS = ("image", "image_path", "img_filename", "file_name", "img_path")
INSTRUCTION_FIELDS = ("instruction", "prompt_to_evaluate")
SIZE_FIELDS = ("image_size", "img_size")
#: Fields that describe one sample rather than a group of them.
NOT_GROUPS = frozenset(
    {
        "id",
        "bbox",
        "instruction_cn",
        "width",
        "height",
        *IMAGE_FIELDS,
        *INSTRUCTION_FIELDS,
        *SIZE_FIELDS,
    }
)


def group_names(rows: list[Entry]) -> list[str]:
    """Grouping fields in first-seen order: scalar (str, int, bool) fields outside `NOT_GROUPS`."""
    names: list[str] = []
    for e in rows:
        for key, value in e.data.items():
            if key in NOT_GROUPS or key in names:
                continue
            if isinstance(value, (str, int, bool)):
                names.append(key)
    return names


def are_fractions(boxes: list[list[float]]) -> bool:
    """Every value of every box within [0, 1]: fractions of the image (a pixel box there is a
    one-pixel box at the corner, which no benchmark has)."""
    return bool(boxes) and all(0.0 <= v <= 1.0 for b in boxes for v in b)


def to_pixels(e: Entry, box: list[float], fractions: bool, size: tuple[int, int] | None) -> tuple[Box, bool]:
    """``box`` ([x1, y1, x2, y2], pixels or fractions) in pixels with its corners in order."""
    if fractions:
        if size is None:
            raise e.error(f"is {box!r}, fractions of the image, but the image size is unknown", "bbox")
        box = list(scale(box, size))
    return ordered(box)


def ident(e: Entry, stem: str) -> str:
    value = e.data.get("id")
    if value is None:
        return f"{stem}:{e.index}"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise e.error(f"is {value!r}, not a string or integer", "id")
    return str(value)


def check_past_image(
    where: str, rows: list[Entry], boxes: list[list[float]], sizes: list, bbox: str | None
) -> None:
    """Refuse [x1, y1, x2, y2] pixel boxes that end past their image: such a file may hold
    [x, y, w, h] boxes, and only ``--bbox`` can say so."""
    if bbox is not None:
        return
    for e, box, size in zip(rows, boxes, sizes, strict=True):
        if past_image(box, size):
            raise ambiguous(
                f"{where}: {e.label}",
                f"bbox {box!r} as [x1, y1, x2, y2] ends past the {size[0]}x{size[1]} image",
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
