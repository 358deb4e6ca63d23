"""OSWorld-G (xlang-ai/OSWorld-G): ``OSWorld-G.json`` (or ``OSWorld-G_refined.json``) beside
``images/``; entries carry ``box_type`` (bbox / polygon / refusal), ``box_coordinates``,
``image_path``, ``image_size``, ``instruction`` and ``GUI_types``, and a bucket file may name each
sample's categories.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ...errors import LavError
from ...files import read_json
from ..entries import Entry, ambiguous, ordered, past_image
from ..samples import Sample, polygon_box
from .base import Format, Parsed, ReadOptions, Spec, entries, ident, images_dir, json_files, no_files

GROUPS = ["box_type", "GUI_types"]

#: Where OSWorld-G's categories (Text Matching, Element Recognition, Layout Understanding,
#: Fine-grained Manipulation, Refusal: the columns of its paper's table) may lie beside the
#: annotation file. A sample can be in several.
BUCKET_FILES = ("buckets.json", "classification_result.json")


def read_osworld_buckets(folder: Path) -> tuple[dict[str, list[str]], str | None]:
    """``{sample id: [bucket, ...]}`` from the first of `BUCKET_FILES` in ``folder``, and that file's
    name (``{}, None`` when there is none).

    Read as ``{"classified": {bucket: [id or {"id": id}, ...]}}`` (the shape third-party loaders of
    the upstream ``classification_result.json`` read) or the same mapping at the top level.
    """
    for name in BUCKET_FILES:
        path = folder / name
        if not path.is_file():
            continue
        what = "OSWorld-G bucket file"
        data = read_json(path, what, expect=dict, fix="pass the benchmark's own file or remove it")
        buckets = data.get("classified", data)
        out: dict[str, list[str]] = {}
        if not isinstance(buckets, dict):
            raise LavError(f"{what} {path}: 'classified' is not an object of bucket -> ids; remove the file")
        for bucket, members in buckets.items():
            if not isinstance(members, list):
                raise LavError(
                    f"{what} {path}: bucket {bucket!r} is not a list of sample ids; remove the file"
                )
            for m in members:
                ident_ = m.get("id") if isinstance(m, dict) else m
                if isinstance(ident_, bool) or not isinstance(ident_, (str, int)):
                    raise LavError(
                        f"{what} {path}: bucket {bucket!r} holds {m!r}, not a sample id; remove the file"
                    )
                out.setdefault(str(ident_), []).append(str(bucket))
        return out, name
    return {}, None


def _convention(path: Path, found: list[Entry], bbox: str | None) -> str:
    """``xywh`` (the release's convention) unless a box would end past its image as [x, y, w, h]:
    then the file holds corners and ``--bbox`` must say so."""
    if bbox is not None:
        return bbox
    for e in found:
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
    out = Parsed()
    kinds: Counter[str] = Counter()
    for path in files:
        found = entries(path, "OSWorld-G annotation file")
        convention = _convention(path, found, bbox)
        buckets, bucket_file = read_osworld_buckets(path.parent)
        if bucket_file:
            placed = sum(ident(e, path.stem) in buckets for e in found)
            out.notes.append(
                f"OSWorld-G categories from {bucket_file}: {placed} of {len(found)} samples in at least one"
            )
        for e in found:
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
            groups = e.groups(GROUPS)
            if bucket_file:
                # Several buckets joined by '|' (GUI_types already uses '/'); the summary's
                # official block counts a sample in each of them.
                groups["bucket"] = "|".join(buckets.get(ident(e, path.stem), [])) or "none"
            out.samples.append(
                Sample(
                    id=ident(e, path.stem),
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
            out.add_groups([g for g in [*GROUPS, "bucket"] if g in groups])
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


def _files(folder: Path) -> list[Path]:
    files = {f.name: f for f in json_files(folder) if f.name.startswith("OSWorld-G")}
    # The refined release re-annotates the same samples: one of the two, never both.
    for name in ("OSWorld-G_refined.json", "OSWorld-G.json"):
        if name in files:
            return [files[name]]
    return sorted(files.values())


def _read(p: Path, options: ReadOptions) -> Parsed:
    files = _files(p) if p.is_dir() else [p]
    if not files:
        raise no_files("OSWorld-G", p, "OSWorld-G.json")
    folder = p if p.is_dir() else p.parent
    return read_osworld_g(files, images_dir(options.images, [folder / "images", folder]), options.bbox)


FORMAT = Format(
    name="osworld-g",
    layout="OSWorld-G.json",
    read=_read,
    rank=30,
    by_name=lambda p: p.name.lower().startswith("osworld-g") and p.suffix == ".json",
    by_layout=lambda p: bool(_files(p)),
    by_fields=lambda common, p: {"box_type", "box_coordinates"} <= common,
    official=Spec(
        "OSWorld-G",
        micro="Overall",
        tables=(("box_type", "GUI_types"),),
        source="xlang-ai/OSWorld-G (accuracy over all samples; per category from its bucket file)",
        multi="bucket",
    ),
)
