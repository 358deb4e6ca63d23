"""ScreenSpot v1 / v2 (njucckevin/SeeClick) and GUI-Actor's converted copy: ``screenspot_<split>.json``
lists of ``img_filename``, ``instruction``, ``bbox``, ``data_type`` / ``ui_type``, ``data_source``,
with the screenshots in a sibling ``images/`` (``screenspotv2_image/`` in v2's release).

Field names and box conventions are those of the benchmark's files and official evaluation script
(sources in shared/EVAL.md); boxes become ``(x1, y1, x2, y2)`` original-image pixels.
"""

from __future__ import annotations

from pathlib import Path

from ..entries import ambiguous, box_convention, describe, ordered
from ..samples import Sample
from .base import Format, Parsed, ReadOptions, Spec, entries, ident, images_dir, json_files, no_files

GROUPS = ["split", "data_type", "data_source", "group", "platform", "ui_type", "application"]
#: The fields every ScreenSpot entry has (ScreenSpot-Pro's and VenusBench-GD's too: those formats
#: are checked first).
FIELDS = frozenset({"img_filename", "bbox", "instruction"})


def screenspot_split(stem: str) -> str:
    """``screenspot_mobile_v2`` -> ``mobile``: the file's part of the benchmark."""
    name = stem.removeprefix("screenspot_").removesuffix("_v2")
    return name or stem


def _files(folder: Path) -> list[Path]:
    return [f for f in json_files(folder) if f.name.startswith("screenspot_")]


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
        found = entries(path, what)
        raw = [e.numbers("bbox") for e in found]
        sizes = [e.size("img_size") for e in found]
        sized = bool(found) and all(s is not None for s in sizes)
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
        for e, box, size in zip(found, raw, sizes, strict=True):
            if convention == "xywh":
                target = e.xywh_box("bbox", box)
            else:
                target, swapped = ordered(box)
                if swapped:
                    raise e.error(f"is {box!r}: x2 < x1 or y2 < y1 in an [x1, y1, x2, y2] file", "bbox")
            groups = {"split": split, **e.groups(GROUPS[1:])}
            out.samples.append(
                Sample(
                    id=ident(e, path.stem),
                    image=images / e.text("img_filename"),
                    instruction=e.text("instruction"),
                    target="box",
                    box=target,
                    image_size=size,
                    groups=groups,
                    size_rule="annotated" if size is not None else "stored",
                )
            )
            out.add_groups([g for g in GROUPS if g in groups])
    return out


def _read(p: Path, options: ReadOptions) -> Parsed:
    files = (_files(p) or json_files(p)) if p.is_dir() else [p]
    if not files:
        raise no_files("ScreenSpot", p, "screenspot_*.json")
    folder = p if p.is_dir() else p.parent
    roots = [folder / "images", folder / "screenspotv2_image", folder]
    return read_screenspot(files, images_dir(options.images, roots), options.bbox)


FORMAT = Format(
    name="screenspot",
    layout="screenspot_*.json",
    read=_read,
    rank=60,
    by_name=lambda p: p.name.lower().startswith("screenspot_") and p.suffix == ".json",
    by_layout=lambda p: bool(_files(p)),
    by_fields=lambda common, p: common >= FIELDS,
    # SeeClick pretrain/screenspot_test.py l. 118 keeps one [text_acc, icon_acc] pair per split;
    # readme.md l. 40-48's "Average" is the plain mean of those six split x type cells (macro:
    # SeeClick's row, (78.0 + 52.0 + 72.2 + 30.0 + 55.7 + 32.5) / 6 = 53.4). ``"type"`` stands for
    # the element-type field (``data_type`` in SeeClick's files, ``ui_type`` in GUI-Actor's copy).
    official=Spec(
        "ScreenSpot",
        micro="micro (all samples; not a column of SeeClick's table)",
        macro="Average",
        macro_over=("split", "type"),
        tables=(("split", "type"),),
        source="njucckevin/SeeClick pretrain/screenspot_test.py l. 118 and readme.md l. 40-48",
        names=(("text", "text"), ("icon", "icon")),  # the table's Text before Icon
    ),
)
