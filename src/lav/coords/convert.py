"""Coordinate conventions, and the click in original-image pixels.

Qwen2-VL and Qwen3-VL answer on a 0-1000 scale of the image; Qwen2.5-VL answers in pixels of the
image *after* ``smart_resize``; fine-tunes often answer in 0-1 fractions, in pixels of the original
image, on 0-999 (Step-GUI, MAI-UI's own parser), on 0-100 (Molmo) or y-first on 0-1000 (Gemini's
``box_2d`` = [ymin, xmin, ymax, xmax], points [y, x]). A value outside the
convention's range is the usual sign of the wrong convention, so it is flagged and kept, never
clipped: a clipped click would look like a plausible hit on the image border.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..errors import InputError
from .parse import Parsed, centre

#: Qwen2-VL / Qwen3-VL: 0-1000 of the image. The top is open (values up to 1000 inclusive are in
#: range) because the scale has also been documented as 0-999.
RELATIVE_1000 = "relative-1000"
#: Qwen2.5-VL: pixels of the resized image the model saw.
ABSOLUTE_RESIZED = "absolute-resized"
#: 0-1 fractions of the image.
NORMALIZED_1 = "normalized-1"
#: Pixels of the original image, before any resize (what users who trained on raw screenshots get).
ABSOLUTE_ORIGINAL = "absolute-original"
#: 0-999 of the image: x * W / 999 (Step-GUI; MAI-UI's grounding agent divides by 999).
RELATIVE_999 = "relative-999"
#: 0-100 of the image (Molmo's percentages).
RELATIVE_100 = "relative-100"
#: y first on 0-1000: Gemini's ``box_2d`` [ymin, xmin, ymax, xmax] and points [y, x].
RELATIVE_1000_YX = "relative-1000-yx"
CONVENTIONS: tuple[str, ...] = (
    RELATIVE_1000,
    ABSOLUTE_RESIZED,
    NORMALIZED_1,
    ABSOLUTE_ORIGINAL,
    RELATIVE_999,
    RELATIVE_100,
    RELATIVE_1000_YX,
)
#: Conventions whose answers write y before x.
Y_FIRST = frozenset({RELATIVE_1000_YX})
#: Answer formats whose key fixes the convention: Gemini's ``box_2d`` is y-first on 0-1000.
_FORMAT_CONVENTIONS = {"json-box_2d": RELATIVE_1000_YX}

_RANGE_WORDS = {
    RELATIVE_1000: "the 0–1000 relative scale",
    NORMALIZED_1: "the 0–1 normalized range",
    RELATIVE_999: "the 0–999 relative scale",
    RELATIVE_100: "the 0–100 relative scale",
    RELATIVE_1000_YX: "the 0–1000 relative scale",
}


def _check_convention(name: str, what: str) -> str:
    if name not in CONVENTIONS:
        valid = ", ".join(repr(c) for c in CONVENTIONS)
        raise InputError(f"unknown coordinate convention {name!r} for {what}; use one of {valid}")
    return name


def _check_size(size: tuple[int, int], what: str) -> tuple[int, int]:
    try:
        ok = len(size) == 2 and all(s > 0 for s in size)
    except TypeError:
        ok = False
    if not ok:
        raise InputError(f"{what} must be (width, height) with both sides positive, got {size!r}")
    return int(size[0]), int(size[1])


def resolve_convention(parsed: Parsed, family_default: str, override: str | None) -> str:
    """The convention to read ``parsed`` in: the user's override, else the family's default.

    Decimals all within [0, 1] are read as fractions whatever the family, since a 0-1000 value or a
    pixel below 1 is no plausible click ((0.42, 0.77) is a fine-tune answering in fractions). A
    format whose key names its convention (Gemini's ``box_2d``: y-first on 0-1000) is read in it.
    """
    if override is not None:
        return _check_convention(override, "coords")
    default = _check_convention(family_default, "the model family's default")
    if parsed.format in _FORMAT_CONVENTIONS:
        return _FORMAT_CONVENTIONS[parsed.format]
    if default != NORMALIZED_1 and parsed.has_decimal and all(0.0 <= v <= 1.0 for v in parsed.values):
        return NORMALIZED_1
    return default


@dataclass(frozen=True)
class Click:
    """Where the model clicks, in original-image pixels (x right, y down).

    ``raw``: the numbers as written. ``box``: (x1, y1, x2, y2) in original-image pixels for a box
    answer, whose centre is (x, y). Coordinates are never clipped; ``in_range`` says whether every
    raw value lies in the convention's range and ``inside_image`` whether (x, y) lies in the image.
    ``candidates``: every point of the answer (a box's centre) in original-image pixels, the click
    first (InfiGUI-G1 lists several). ``confidence``, ``digits`` and ``alternatives``: how sure the
    model was of the numbers it wrote (`lav.confidence`; None and empty when not scored).
    """

    x: float
    y: float
    raw: tuple[float, ...]
    kind: str
    convention: str
    box: tuple[float, float, float, float] | None
    in_range: bool
    inside_image: bool
    warning: str | None
    candidates: tuple[tuple[float, float], ...] = ()
    confidence: float | None = None
    digits: tuple[dict[str, Any], ...] = ()
    alternatives: tuple[dict[str, Any], ...] = ()

    def drawing_point(self, width: int, height: int) -> tuple[float, float]:
        """(x, y) clipped into a ``width`` x ``height`` image: where to draw the marker, nothing more."""
        return min(max(self.x, 0.0), float(width)), min(max(self.y, 0.0), float(height))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly data (lists for tuples)."""
        return {
            "x": float(self.x),
            "y": float(self.y),
            "raw": [float(v) for v in self.raw],
            "kind": self.kind,
            "convention": self.convention,
            "box": None if self.box is None else [float(v) for v in self.box],
            "in_range": self.in_range,
            "inside_image": self.inside_image,
            "warning": self.warning,
            "candidates": [[float(x), float(y)] for x, y in self.candidates],
            "confidence": self.confidence,
            "digits": [dict(d) for d in self.digits],
            "alternatives": [dict(a) for a in self.alternatives],
        }


def _extent(convention: str, resized: tuple[int, int], original: tuple[int, int]) -> tuple[float, float]:
    """The raw values that mean the right and bottom image edges."""
    if convention in (RELATIVE_1000, RELATIVE_1000_YX):
        return 1000.0, 1000.0
    if convention == RELATIVE_999:
        return 999.0, 999.0
    if convention == RELATIVE_100:
        return 100.0, 100.0
    if convention == ABSOLUTE_RESIZED:
        return float(resized[0]), float(resized[1])
    if convention == ABSOLUTE_ORIGINAL:
        return float(original[0]), float(original[1])
    return 1.0, 1.0


def _xy_order(values: tuple[float, ...], convention: str) -> tuple[float, ...]:
    """``values`` as (x, y[, x2, y2]): swapped pairwise for a y-first convention."""
    if convention not in Y_FIRST:
        return values
    return tuple(v for i in range(0, len(values), 2) for v in (values[i + 1], values[i]))


def oriented(parsed: Parsed, convention: str) -> Parsed:
    """``parsed`` with x written first: a y-first answer's values and spans swapped, else as is.

    The focus's x and y rows come from the spans, so a Gemini-style [y, x] answer needs them swapped.
    """
    if convention not in Y_FIRST:
        return parsed
    return replace(
        parsed,
        values=_xy_order(parsed.values, convention),
        x_spans=parsed.y_spans,
        y_spans=parsed.x_spans,
        candidates=tuple(_xy_order(c, convention) for c in parsed.candidates),
    )


def _outside(raw: tuple[float, ...], kind: str, extent: tuple[float, float]) -> list[tuple[str, float]]:
    names = ("x", "y") if kind == "point" else ("x1", "y1", "x2", "y2")
    return [(n, v) for i, (n, v) in enumerate(zip(names, raw, strict=True)) if not 0.0 <= v <= extent[i % 2]]


def _warning(
    raw: tuple[float, ...],
    kind: str,
    convention: str,
    resized: tuple[int, int],
    original: tuple[int, int],
    bad: list[tuple[str, float]],
) -> str:
    listed = " and ".join(f"{n}={v:g}" for n, v in bad)
    verb = "is" if len(bad) == 1 else "are"
    if convention == ABSOLUTE_ORIGINAL:
        where = f"the {original[0]}x{original[1]} px original image"
    else:
        where = _RANGE_WORDS.get(convention, f"the {resized[0]}x{resized[1]} px resized image")
    fitting = [
        c for c in CONVENTIONS if c != convention and not _outside(raw, kind, _extent(c, resized, original))
    ]
    if fitting:
        advice = f"the model may answer in another convention; pass coords='{fitting[0]}' if so"
    else:
        advice = "no convention fits these numbers; check the answer's format or the prompt"
    return f"{listed} {verb} outside {where}: {advice}"


def to_click(
    parsed: Parsed, convention: str, resized_size: tuple[int, int], original_size: tuple[int, int]
) -> Click:
    """The click of ``parsed`` in original-image pixels. Sizes are (width, height).

    relative-1000: x * W / 1000; relative-999: x * W / 999; relative-100: x * W / 100;
    absolute-resized: x * W / W_resized; absolute-original: x; normalized-1: x * W, with W the
    original width (likewise for y); relative-1000-yx: as relative-1000 with y written first.
    A refusal has no click: check ``parsed.refusal`` first.
    """
    if parsed.refusal is not None:
        raise ValueError(f"a refusal has no click ({parsed.refusal})")
    convention = _check_convention(convention, "to_click")
    resized = _check_size(resized_size, "resized_size")
    original = _check_size(original_size, "original_size")
    width, height = original
    ex, ey = _extent(convention, resized, original)
    xy = oriented(parsed, convention)

    def scale(x: float, y: float) -> tuple[float, float]:
        return x * width / ex, y * height / ey

    x, y = scale(*xy.point)
    box = None
    if xy.kind == "box":
        x1, y1, x2, y2 = xy.values
        box = (*scale(x1, y1), *scale(x2, y2))
    bad = _outside(xy.values, xy.kind, (ex, ey))
    candidates = tuple(scale(*centre(c)) for c in xy.candidates) or ((x, y),)
    return Click(
        x=x,
        y=y,
        raw=parsed.values,
        kind=parsed.kind,
        convention=convention,
        box=box,
        in_range=not bad,
        inside_image=0.0 <= x <= width and 0.0 <= y <= height,
        warning=_warning(xy.values, xy.kind, convention, resized, original, bad) if bad else None,
        candidates=candidates,
    )
