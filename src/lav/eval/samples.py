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
#: What a box is divided by before a click (a fraction of the image the model saw) is compared.
SIZE_RULES = ("annotated", "stored")

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
    #: What the official script divides the box by: ``"annotated"`` (``image_size``, the size the
    #: box was drawn on) or ``"stored"`` (the image file it opens). See `official_hit`.
    size_rule: str = "stored"
    #: The box as the official script reads it when that differs from ``box``: ScreenSpot-Pro takes
    #: ``[x1, y1, x2, y2]`` as written, so a box with reversed corners is never hit.
    written: Box | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if self.target in ("box", "polygon") and self.box is None:
            raise ValueError(f"a {self.target!r} sample needs its box")
        if self.target == "polygon" and (self.polygon is None or len(self.polygon) < 3):
            raise ValueError("a 'polygon' sample needs a polygon of at least 3 points")
        if self.size_rule not in SIZE_RULES:
            raise ValueError(f"size_rule must be one of {SIZE_RULES}, got {self.size_rule!r}")
        if self.size_rule == "annotated" and self.image_size is None:
            raise ValueError("size_rule 'annotated' needs the annotated image_size")


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


def official_hit(sample: Sample, x: float, y: float, stored: tuple[int, int]) -> bool:
    """Does a click at ``(x, y)`` (pixels of the stored image, of size ``stored``) hit ``sample``'s
    target under its benchmark's official rule?

    The rule of every official script (ScreenSpot-Pro ``eval_screenspot_pro.py`` l. 137-150,
    UI-Vision ``eval/grounding/eval_uivision.py`` ``eval_sample_positive_gt``, SeeClick
    ``pretrain/screenspot_test.py`` l. 68-71 and 87): the click as a fraction of the image the model
    saw, the box divided by the annotated size (``size_rule`` "annotated") or by the stored image's
    size ("stored"), ``x1 <= x <= x2`` and ``y1 <= y <= y2`` with the box as the script reads it
    (`Sample.written`; edges included). A polygon is scored in annotated pixels.
    """
    fx, fy = float(x) / stored[0], float(y) / stored[1]
    ref = sample.image_size if sample.size_rule == "annotated" and sample.image_size else stored
    if sample.target == "polygon":
        assert sample.polygon is not None
        return bool(point_in_polygon(fx * ref[0], fy * ref[1], sample.polygon))
    box = sample.written if sample.written is not None else sample.box
    assert box is not None
    x1, y1, x2, y2 = box[0] / ref[0], box[1] / ref[1], box[2] / ref[0], box[3] / ref[1]
    return bool(x1 <= fx <= x2 and y1 <= fy <= y2)
