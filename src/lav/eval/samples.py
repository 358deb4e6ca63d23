"""One benchmark sample and how a click is scored against it.

Every format is read into the same `Sample`: the screenshot's path, the instruction, what counts as
correct (`target`) and the target's geometry in original-image pixels. Scoring follows the official
scripts (ScreenSpot-Pro's ``eval_screenspot_pro.py``, UI-Vision's element grounding script,
OSWorld-G): a click is right when it lies inside the box or polygon, edges included; for a
``negative`` (ScreenSpot-Pro) or ``refusal`` (OSWorld-G) sample only *no click* is right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..metrics import point_in_box

#: What a sample asks of the model.
TARGETS = ("box", "polygon", "negative", "refusal")

Box = tuple[float, float, float, float]
Polygon = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Sample:
    """One instruction on one screenshot, with its answer key in original-image pixels.

    ``box`` is ``(x1, y1, x2, y2)``, corners in order, edges inclusive; for a polygon it is the
    polygon's bounding box; None for ``negative`` / ``refusal``. ``groups`` maps every grouping
    field of the format (``data_type``, ``platform``, ``ui_type``, ``split``, ...) to its value.
    ``image`` is not checked for existence: a missing screenshot is that sample's error at
    evaluation time, not the dataset's.
    """

    id: str
    image: Path
    instruction: str
    target: str
    box: Box | None
    polygon: Polygon | None = None
    image_size: tuple[int, int] | None = None
    groups: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if self.target in ("box", "polygon") and self.box is None:
            raise ValueError(f"a {self.target!r} sample needs its box")
        if self.target == "polygon" and (self.polygon is None or len(self.polygon) < 3):
            raise ValueError("a 'polygon' sample needs a polygon of at least 3 points")


@dataclass(frozen=True)
class Dataset:
    """The samples of one benchmark, with what the loader detected and decided (``notes``)."""

    name: str
    format: str
    samples: tuple[Sample, ...]
    notes: tuple[str, ...] = ()
    group_fields: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.samples)


def in_target(sample: Sample, x: float | None, y: float | None) -> bool:
    """Is a click at ``(x, y)`` (original-image pixels; ``x`` None: no click) right for ``sample``?

    ``box``: inside the box, edges included. ``polygon``: inside the polygon or on its boundary.
    ``negative`` / ``refusal``: right only without a click.
    """
    if sample.target in ("negative", "refusal"):
        return x is None
    if x is None or y is None:
        return False
    if sample.target == "polygon":
        assert sample.polygon is not None
        return point_in_polygon(x, y, sample.polygon)
    assert sample.box is not None
    return point_in_box(x, y, sample.box)


def point_in_polygon(x: float, y: float, polygon: Polygon) -> bool:
    """Is ``(x, y)`` inside the simple polygon ``polygon`` or on its boundary (even-odd rule)?"""
    n = len(polygon)
    inside = False
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        if _on_segment(x, y, x1, y1, x2, y2):
            return True
        # Half-open in y so that a ray through a vertex counts that vertex once.
        if (y1 > y) != (y2 > y):
            cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < cross:
                inside = not inside
    return inside


def _on_segment(x: float, y: float, x1: float, y1: float, x2: float, y2: float) -> bool:
    cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
    scale = max(abs(x2 - x1), abs(y2 - y1), 1.0)
    if abs(cross) > 1e-9 * scale:
        return False
    return min(x1, x2) <= x <= max(x1, x2) and min(y1, y2) <= y <= max(y1, y2)


def polygon_box(polygon: Polygon) -> Box:
    """The bounding box ``(x1, y1, x2, y2)`` of ``polygon``."""
    xs = [p[0] for p in polygon]
    ys = [p[1] for p in polygon]
    return (min(xs), min(ys), max(xs), max(ys))
