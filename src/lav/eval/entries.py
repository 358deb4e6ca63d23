"""Reading one annotation entry: fields checked one by one, errors that name the file and the entry.

A benchmark file with a broken entry must stop the run with one line that says which file, which
entry (index and id) and which field, so the user can fix it; every reader uses `Entry` for that.
`box_convention` decides, over a whole file, whether four numbers are ``[x, y, w, h]`` or
``[x1, y1, x2, y2]``: the harnesses disagree, so the data decides where it can.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import LavError
from .samples import Box, Polygon

_FIX = "fix or remove that entry"


class Entry:
    """One entry of an annotation file, for reading its fields with errors that point at it."""

    def __init__(
        self,
        source: Path | str,
        index: int,
        data: Any,
        what: str = "annotation file",
        place: str | None = None,
    ) -> None:
        self.source = source
        self.index = index
        self.what = what
        self.place = place or f"entry {index}"
        if not isinstance(data, dict):
            raise self.error(f"is a JSON {type(data).__name__}, not an object")
        self.data: dict[str, Any] = data

    @property
    def label(self) -> str:
        ident = self.data.get("id") if isinstance(getattr(self, "data", None), dict) else None
        named = f" (id {ident!r})" if isinstance(ident, (str, int)) and not isinstance(ident, bool) else ""
        return f"{self.place}{named}"

    def error(self, problem: str, field: str | None = None) -> LavError:
        where = f"field {field!r} " if field else ""
        return LavError(f"{self.what} {self.source}: {self.label}: {where}{problem}; {_FIX}")

    def has(self, field: str) -> bool:
        return self.data.get(field) is not None

    def text(self, field: str, *alternatives: str) -> str:
        """The non-empty string in ``field`` (or the first of ``alternatives`` present)."""
        for name in (field, *alternatives):
            if name in self.data:
                value = self.data[name]
                if not isinstance(value, str):
                    raise self.error(f"is a {type(value).__name__}, not a string", name)
                if not value.strip():
                    raise self.error("is empty", name)
                return value
        names = " or ".join(repr(n) for n in (field, *alternatives))
        raise self.error(f"has no field {names}")

    def numbers(self, field: str, count: int | None = 4) -> list[float]:
        """The finite numbers in list ``field``: exactly ``count`` of them (any number if None)."""
        if field not in self.data:
            raise self.error(f"has no field {field!r}")
        return self.number_list(self.data[field], field, count)

    def number_list(self, value: Any, field: str, count: int | None = 4) -> list[float]:
        if not isinstance(value, (list, tuple)):
            raise self.error(f"is a {type(value).__name__}, not a list of numbers", field)
        if count is not None and len(value) != count:
            raise self.error(f"has {len(value)} values, not {count}", field)
        out: list[float] = []
        for v in value:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise self.error(f"holds {v!r}, which is not a number", field)
            if not math.isfinite(v):
                raise self.error(f"holds {v!r}, which is not a finite number", field)
            out.append(float(v))
        return out

    def size(self, *fields: str) -> tuple[int, int] | None:
        """``(width, height)`` from the first of ``fields`` present, or None when none is."""
        for name in fields:
            if self.data.get(name) is None:
                continue
            w, h = self.numbers(name, 2)
            if not (w > 0 and h > 0 and w.is_integer() and h.is_integer()):
                raise self.error(f"is {self.data[name]!r}, not [width, height] in whole pixels", name)
            return int(w), int(h)
        return None

    def xywh_box(self, field: str, values: Sequence[float] | None = None) -> Box:
        """``[x, y, w, h]`` in ``field`` as ``(x1, y1, x2, y2)``; a negative side is an error."""
        x, y, w, h = values if values is not None else self.numbers(field)
        if w < 0 or h < 0:
            raise self.error(f"is {[x, y, w, h]!r}: [x, y, w, h] with a negative width or height", field)
        return (x, y, x + w, y + h)

    def polygon(self, field: str) -> Polygon:
        """A polygon in ``field``: flat ``[x1, y1, x2, y2, ...]`` or paired ``[[x, y], ...]``."""
        value = self.data.get(field)
        if not isinstance(value, list) or not value:
            raise self.error("is not a non-empty list of points", field)
        if all(isinstance(p, (list, tuple)) for p in value):
            points = [tuple(self.number_list(p, field, 2)) for p in value]
        else:
            flat = self.number_list(value, field, None)
            if len(flat) % 2:
                raise self.error(f"has {len(flat)} numbers; a flat polygon needs x, y pairs", field)
            points = list(zip(flat[0::2], flat[1::2], strict=True))
        if len(points) < 3:
            raise self.error(f"has {len(points)} points; a polygon needs at least 3", field)
        return tuple((float(x), float(y)) for x, y in points)

    def groups(self, fields: Iterable[str]) -> dict[str, str]:
        """The scalar grouping ``fields`` present in the entry, as strings (lists joined by '/')."""
        out: dict[str, str] = {}
        for name in fields:
            value = self.data.get(name)
            if value is None:
                continue
            if isinstance(value, list):
                if all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
                    out[name] = "/".join(str(v) for v in value) if value else "none"
                continue
            if isinstance(value, (str, int, float, bool)):
                out[name] = str(value)
        return out


def ordered(box: Sequence[float]) -> tuple[Box, bool]:
    """``box`` with its corners in order, and whether they had to be swapped."""
    x1, y1, x2, y2 = box
    fixed = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    return fixed, fixed != (x1, y1, x2, y2)


def scale(box: Sequence[float], size: tuple[int, int]) -> Box:
    """A box in fractions of the image as pixels of an image of ``size`` (width, height)."""
    w, h = size
    return (box[0] * w, box[1] * h, box[2] * w, box[3] * h)


def box_convention(
    boxes: Sequence[Sequence[float]],
    sizes: Sequence[tuple[float, float] | None],
    default: str,
    where: str,
    unit: float | None = None,
) -> tuple[str, str]:
    """Whether the four numbers of every box are ``"xywh"`` or ``"xyxy"``, and the evidence.

    A reading is ruled out by one box it cannot be: as ``[x1, y1, x2, y2]`` a box never has
    ``x2 < x1`` (nor ``y2 < y1``); as ``[x, y, w, h]`` it never ends past the image (``x + w`` over
    the width, with one pixel of slack). ``sizes`` are the images' (width, height) where known;
    ``unit`` replaces them when the boxes are fractions (1.0). When both readings fit every box,
    ``default`` is taken; when neither does, `LavError` naming ``where`` (the file).
    """
    not_xyxy = next((i for i, b in enumerate(boxes) if b[2] < b[0] or b[3] < b[1]), None)
    not_xywh = None
    for i, (b, size) in enumerate(zip(boxes, sizes, strict=True)):
        w, h = (unit, unit) if unit is not None else (size if size is not None else (None, None))
        slack = 1e-6 if unit is not None else 1.0
        if w is not None and h is not None and (b[0] + b[2] > w + slack or b[1] + b[3] > h + slack):
            not_xywh = i
            break
    if not_xyxy is not None and not_xywh is not None:
        raise LavError(
            f"{where}: its boxes fit neither [x, y, w, h] (box {not_xywh} would end past the image) nor "
            f"[x1, y1, x2, y2] (box {not_xyxy} has x2 < x1 or y2 < y1); check the bbox field"
        )
    if not_xyxy is not None:
        return "xywh", f"box {not_xyxy} has its third value below its first (or fourth below second)"
    if not_xywh is not None:
        return "xyxy", f"box {not_xywh} would end past the image if read as [x, y, w, h]"
    return default, f"both readings fit all {len(boxes)} boxes"


def describe(convention: str) -> str:
    return "[x, y, w, h]" if convention == "xywh" else "[x1, y1, x2, y2]"


#: The values of ``--bbox`` (``load_dataset(bbox=...)``): how a file's four numbers are written.
BBOX_CONVENTIONS = ("xywh", "xyxy")


def ambiguous(where: str, why: str) -> LavError:
    """The one line that refuses a box convention the data cannot settle, naming ``--bbox``."""
    return LavError(
        f"{where}: {why}; say how its boxes are written with --bbox xywh ([x, y, width, height]) "
        "or --bbox xyxy ([x1, y1, x2, y2])"
    )


def past_image(box: Sequence[float], size: tuple[int, int] | None, slack: float = 1.0) -> bool:
    """Does ``box`` ([x1, y1, x2, y2] pixels) end past an image of ``size`` (one pixel of slack)?"""
    if size is None:
        return False
    return max(box[0], box[2]) > size[0] + slack or max(box[1], box[3]) > size[1] + slack


def fit_note(
    name: str, boxes: Sequence[Sequence[float]], sizes: Sequence[tuple[int, int] | None]
) -> list[str]:
    """A note when boxes end past the annotated size they are divided by (a sign that they were
    drawn on another copy of the image)."""
    past = [i for i, (b, s) in enumerate(zip(boxes, sizes, strict=True)) if past_image(b, s)]
    if not past:
        return []
    return [
        f"{name}: {len(past)} box(es) end past their annotated image size (e.g. box {past[0]}); the "
        "official script divides them by that size all the same, and so does lav"
    ]
