"""The published GUI-grounding benchmarks that ship as JSON lists: ScreenSpot (v1, v2 and GUI-Actor's
converted copy), ScreenSpot-Pro, OSWorld-G and UI-Vision's element grounding.

Field names and box conventions are those of each benchmark's files and official evaluation script
(sources in shared/EVAL.md); each reader turns one file's entries into `Sample` records with boxes
as ``(x1, y1, x2, y2)`` original-image pixels and says in its notes what it found.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import LavError
from ...files import read_json
from ..entries import Entry, ambiguous, box_convention, describe, fit_note, ordered, past_image
from ..samples import Sample, polygon_box


@dataclass
class Parsed:
    """What a reader found: samples in file order, notes, grouping fields in display order."""

    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    group_fields: list[str] = field(default_factory=list)

    def add_groups(self, names: list[str]) -> None:
        for name in names:
            if name not in self.group_fields:
                self.group_fields.append(name)


def _entries(path: Path, what: str) -> list[Entry]:
    data = read_json(path, what, expect=list, fix="pass the benchmark's own annotation file")
    return [Entry(path, i, item, what) for i, item in enumerate(data)]


def _ident(entry: Entry, stem: str) -> str:
    value = entry.data.get("id")
    if value is None:
        return f"{stem}:{entry.index}"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise entry.error(f"is {value!r}, not a string or integer", "id")
    return str(value)


def _swapped_note(count: int, name: str, why: str) -> list[str]:
    if not count:
        return []
    return [f"{name}: {count} box(es) had reversed corners (x2 < x1 or y2 < y1): swapped, {why}"]


# --- ScreenSpot v1 / v2 -----------------------------------------------------------------------

SCREENSPOT_GROUPS = ["split", "data_type", "data_source", "group", "platform", "ui_type", "application"]


def screenspot_split(stem: str) -> str:
    """``screenspot_mobile_v2`` -> ``mobile``: the file's part of the benchmark."""
    name = stem.removeprefix("screenspot_").removesuffix("_v2")
    return name or stem


def read_screenspot(files: list[Path], images: Path, bbox: str | None = None) -> Parsed:
    """ScreenSpot v1/v2 files (``bbox`` [x, y, w, h] px) and GUI-Actor's copy (``img_size``,
    [x1, y1, x2, y2] px): the convention is decided per file from all its boxes; a file whose boxes
    fit both readings is refused unless ``bbox`` ("xywh" / "xyxy") says which.

    Scoring: SeeClick ``pretrain/screenspot_test.py`` l. 68-71 divides the box by the size of the
    image file it opened (``size_rule`` "stored"); GUI-Actor's copy carries ``img_size``, which is
    then the size the box is divided by, as ScreenSpot-Pro does."""
    out = Parsed()
    for path in files:
        what = "ScreenSpot annotation file"
        entries = _entries(path, what)
        raw = [e.numbers("bbox") for e in entries]
        sizes = [e.size("img_size") for e in entries]
        sized = bool(entries) and all(s is not None for s in sizes)
        if bbox is not None:
            convention, evidence = bbox, "given with --bbox"
        else:
            convention, evidence = box_convention(
                raw, sizes, default="xyxy" if sized else "xywh", where=f"{what} {path}"
            )
            if raw and evidence.startswith("both readings fit"):
                raise ambiguous(
                    f"{what} {path}",
                    f"all {len(raw)} boxes fit both [x, y, w, h] and [x1, y1, x2, y2]",
                )
        if sized and convention == "xyxy":
            why = "entries carry img_size (GUI-Actor's converted copy, verifier/README.md)"
        elif convention == "xywh" and not sized:
            why = "the ScreenSpot v1/v2 convention"
        else:
            why = "against the usual convention for such files"
        out.notes.append(f"{path.name}: bbox read as {describe(convention)} ({why}; {evidence})")
        split = screenspot_split(path.stem)
        for e, box, size in zip(entries, raw, sizes, strict=True):
            if convention == "xywh":
                target = e.xywh_box("bbox", box)
            else:
                target, swapped = ordered(box)
                if swapped:
                    raise e.error(f"is {box!r}: x2 < x1 or y2 < y1 in an [x1, y1, x2, y2] file", "bbox")
            groups = {"split": split, **e.groups(SCREENSPOT_GROUPS[1:])}
            out.samples.append(
                Sample(
                    id=_ident(e, path.stem),
                    image=images / e.text("img_filename"),
                    instruction=e.text("instruction"),
                    target="box",
                    box=target,
                    image_size=size,
                    groups=groups,
                    size_rule="annotated" if size is not None else "stored",
                )
            )
            out.add_groups([g for g in SCREENSPOT_GROUPS if g in groups])
    return out


# --- ScreenSpot-Pro ---------------------------------------------------------------------------

PRO_GROUPS = ["split", "group", "application", "platform", "ui_type", "gt_type"]


def read_screenspot_pro(files: list[Path], images: Path) -> Parsed:
    """ScreenSpot-Pro ``annotations/<app>_<os>.json``: ``bbox`` [x1, y1, x2, y2] px, ``img_size``,
    ``gt_type`` positive (or absent) / negative.

    Scoring (``eval_screenspot_pro.py`` l. 137-150): the box is taken as written (l. 138-139: a box
    with reversed corners is never hit) and divided by ``img_size`` (l. 141-142, the annotated size).
    """
    out = Parsed()
    swapped_total = 0
    negatives = 0
    written, sizes = [], []
    for path in files:
        for e in _entries(path, "ScreenSpot-Pro annotation file"):
            gt = e.data.get("gt_type", "positive")
            if gt not in ("positive", "negative"):
                raise e.error(f"is {gt!r}, not 'positive' or 'negative'", "gt_type")
            size = e.size("img_size")
            raw = None
            if gt == "negative":
                negatives += 1
                target, box = "negative", None
            else:
                target = "box"
                raw = e.numbers("bbox")
                box, swapped = ordered(raw)
                swapped_total += swapped
                written.append(raw)
                sizes.append(size)
            groups = {"split": path.stem, **e.groups(PRO_GROUPS[1:])}
            out.samples.append(
                Sample(
                    id=_ident(e, path.stem),
                    image=images / e.text("img_filename"),
                    instruction=e.text("instruction"),
                    target=target,
                    box=box,
                    image_size=size,
                    groups=groups,
                    size_rule="stored" if size is None else "annotated",
                    written=None if raw is None else (raw[0], raw[1], raw[2], raw[3]),
                )
            )
            out.add_groups([g for g in PRO_GROUPS if g in groups])
    out.notes.append(f"bbox read as [x1, y1, x2, y2] pixels (ScreenSpot-Pro) from {len(files)} file(s)")
    out.notes += fit_note("ScreenSpot-Pro", written, sizes)
    if negatives:
        out.notes.append(
            f"{negatives} gt_type negative sample(s): correct only when the model says the target "
            "is not there (no click)"
        )
    if swapped_total:
        out.notes.append(
            f"ScreenSpot-Pro: {swapped_total} box(es) have reversed corners (x2 < x1 or y2 < y1): never "
            "hit, as eval_screenspot_pro.py takes the box as written (l. 138-139)"
        )
    return out


# --- OSWorld-G --------------------------------------------------------------------------------

OSWORLD_GROUPS = ["box_type", "GUI_types"]


def _osworld_convention(path: Path, entries: list[Entry], bbox: str | None) -> str:
    """``xywh`` (the release's convention) unless a box would end past its image as [x, y, w, h]:
    then the file holds corners and ``--bbox`` must say so."""
    if bbox is not None:
        return bbox
    for e in entries:
        if e.data.get("box_type") != "bbox":
            continue
        x, y, w, h = e.numbers("box_coordinates")
        if past_image((x, y, x + w, y + h), e.size("image_size")):
            raise ambiguous(
                f"OSWorld-G annotation file {path}: {e.label}",
                f"box_coordinates {[x, y, w, h]!r} as [x, y, w, h] ends past the image: the file may "
                "hold [x1, y1, x2, y2] boxes",
            )
    return "xywh"


def read_osworld_g(files: list[Path], images: Path, bbox: str | None = None) -> Parsed:
    """OSWorld-G ``OSWorld-G.json``: ``box_type`` bbox ([x, y, w, h] px), polygon (flat or paired
    points) or refusal; ``image_path`` relative to ``images/``. A file whose bbox boxes end past
    the image as [x, y, w, h] is refused unless ``bbox`` says how they are written."""
    from .newer import read_osworld_buckets

    out = Parsed()
    kinds: Counter[str] = Counter()
    for path in files:
        entries = _entries(path, "OSWorld-G annotation file")
        convention = _osworld_convention(path, entries, bbox)
        buckets, bucket_file = read_osworld_buckets(path.parent)
        if bucket_file:
            placed = sum(_ident(e, path.stem) in buckets for e in entries)
            out.notes.append(
                f"OSWorld-G categories from {bucket_file}: {placed} of {len(entries)} samples in at least one"
            )
        for e in entries:
            kind = e.text("box_type")
            kinds[kind] += 1
            polygon = None
            if kind == "bbox" and convention == "xyxy":
                target, box = "box", ordered(e.numbers("box_coordinates"))[0]
            elif kind == "bbox":
                target, box = "box", e.xywh_box("box_coordinates")
            elif kind == "polygon":
                polygon = e.polygon("box_coordinates")
                target, box = "polygon", polygon_box(polygon)
            elif kind == "refusal":
                target, box = "refusal", None
            else:
                raise e.error(f"is {kind!r}, not 'bbox', 'polygon' or 'refusal'", "box_type")
            groups = e.groups(OSWORLD_GROUPS)
            if bucket_file:
                # Several buckets joined by '|' (GUI_types already uses '/'); the summary's
                # official block counts a sample in each of them.
                groups["bucket"] = "|".join(buckets.get(_ident(e, path.stem), [])) or "none"
            out.samples.append(
                Sample(
                    id=_ident(e, path.stem),
                    image=images / e.text("image_path"),
                    instruction=e.text("instruction"),
                    target=target,
                    box=box,
                    polygon=polygon,
                    image_size=e.size("image_size"),
                    groups=groups,
                    size_rule="annotated" if e.has("image_size") else "stored",
                )
            )
            out.add_groups([g for g in [*OSWORLD_GROUPS, "bucket"] if g in groups])
    counts = ", ".join(f"{kinds[k]} {k}" for k in ("bbox", "polygon", "refusal") if kinds[k])
    how = "[x1, y1, x2, y2] (--bbox xyxy)" if bbox == "xyxy" else "[x, y, w, h]"
    out.notes.append(f"OSWorld-G box types: {counts}; bbox read as {how} pixels")
    if kinds["polygon"]:
        out.notes.append("polygons are scored as polygons (edges inclusive), not as their bounding boxes")
    if kinds["refusal"]:
        out.notes.append(
            "refusal samples are correct only when the answer is a refusal (--refusals excluded leaves "
            "them out, as ClawGUI does)"
        )
    return out


# --- UI-Vision element grounding --------------------------------------------------------------

UIVISION_GROUPS = ["split", "platform", "element_type", "category"]


def read_ui_vision(files: list[Path], images: Path) -> Parsed:
    """UI-Vision ``element_grounding_{basic,functional,spatial}.json``: ``bbox`` [x1, y1, x2, y2] px
    (reversed corners swapped, as the official script does), ``prompt_to_evaluate``."""
    out = Parsed()
    swapped_total = 0
    boxes, sizes = [], []
    for path in files:
        split = path.stem.removeprefix("element_grounding_")
        for e in _entries(path, "UI-Vision annotation file"):
            # eval_uivision.py eval_sample_positive_gt: reversed corners swapped, then divided by
            # the annotation's image_size (EVAL.md: l. ~155-162).
            box, swapped = ordered(e.numbers("bbox"))
            swapped_total += swapped
            size = e.size("image_size")
            boxes.append(box)
            sizes.append(size)
            groups = {"split": split, **e.groups(UIVISION_GROUPS[1:])}
            out.samples.append(
                Sample(
                    id=_ident(e, path.stem),
                    image=images / e.text("image_path"),
                    instruction=e.text("prompt_to_evaluate", "instruction"),
                    target="box",
                    box=box,
                    image_size=size,
                    groups=groups,
                    size_rule="stored" if size is None else "annotated",
                )
            )
            out.add_groups([g for g in UIVISION_GROUPS if g in groups])
    out.notes += fit_note("UI-Vision", boxes, sizes)
    out.notes.append(
        "bbox read as [x1, y1, x2, y2] pixels (UI-Vision); prompt_to_evaluate is the instruction"
    )
    out.notes += _swapped_note(swapped_total, "UI-Vision", "as its official script does")
    return out


def no_files(kind: str, where: Path, pattern: str) -> LavError:
    return LavError(f"found no {kind} files ({pattern}) in {where}; pass the benchmark's folder or file")
