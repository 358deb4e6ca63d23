"""Flat rows, one sample each: the rules that lav's own JSON Lines format (`formats.jsonl`) and the
Hugging Face reader (`formats.hf`) apply to their rows.

A row has an image, an instruction, a ``bbox`` and optionally an ``id``; every other scalar field
(string, integer, boolean) is a grouping field. Boxes are ``[x1, y1, x2, y2]`` original pixels;
a file whose every box lies within [0, 1] holds fractions of the image, scaled by the row's
``image_size`` / ``img_size``.
"""

from __future__ import annotations

from ..entries import Entry, ambiguous, ordered, past_image, scale
from ..samples import Box

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
