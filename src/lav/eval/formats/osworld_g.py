"""OSWorld-G (xlang-ai/OSWorld-G): ``OSWorld-G.json`` (or ``OSWorld-G_refined.json``) beside
``images/``; entries carry ``box_type`` (bbox / polygon / refusal), ``box_coordinates``,
``image_path``, ``image_size``, ``instruction`` and ``GUI_types``; ``buckets.json`` beside it
names the GUI types of each category of its paper's table (`Categories`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ...errors import LavError
from ...files import read_json
from ..entries import Entry, ambiguous, ordered, past_image
from ..samples import Sample, polygon_box
from .base import Format, Parsed, ReadOptions, Spec, entries, ident, images_dir, json_files, no_files

GROUPS = ["box_type", "GUI_types"]

#: OSWorld-G's categories as its paper's table names them, in the table's order (Text Matching |
#: Element Recognition | Layout Understanding | Fine-grained Manipulation | Refusal | Overall:
#: ZJU-REAL/ClawGUI clawgui-eval/metric/osworldg_metric.py l. 56-67 and 95, commit d990d3e).
CATEGORY_NAMES: tuple[tuple[str, str], ...] = (
    ("text_matching", "Text Matching"),
    ("element_recognition", "Element Recognition"),
    ("layout_understanding", "Layout Understanding"),
    ("fine_grained_manipulation", "Fine-grained Manipulation"),
    ("refusal", "Refusal"),
)


@dataclass(frozen=True)
class Categories:
    """Which of OSWorld-G's categories a sample is in, from the category file beside its annotations.

    ``classification_result.json`` is ``{"classified": {category: [{"id": id, ...}, ...]}}``: the
    file OSWorld-G's own scripts read (``qwen25_vllm_osworld_g.py --classification_path
    <path_to_classification_result>``, its ``evaluation/README.md`` l. 19-23, read in the copy of
    the xlang-ai/OSWorld-G tree at Onifin/Holo3.1-OSWorld-G commit 0fbdd89; the runner there,
    ``evaluation/holo_osworld_g.py`` ``BenchmarkRunner.evaluate``, puts a sample in every category
    whose list holds its ``id``, in ``unclassified`` when none does, and takes Overall over all
    samples). It is taken over ``buckets.json`` when both are there.
    ``buckets.json`` is ``{category: [GUI type, ...]}``: a sample is in every category that lists
    one of its ``GUI_types`` (sjz5202/GUI-AIMA eval/osworld-g.py ``get_group`` l. 30-34, its
    ``get_metric`` taking the categories from ``buckets.keys()``; ClawGUI osworldg_metric.py l. 9-53
    inlines the same lists and says one type sits in two of them; the same copy's README at commit
    1d16a96: "``benchmark/buckets.json`` maps ``Label`` to ``text_matching``, ``Icon``/``Image``/
    ``Button`` to ``element_recognition``"), and a ``refusal`` sample is in Refusal alone (ClawGUI
    osworldg_metric.py l. 124-127, 140-143).
    """

    file: str
    by_type: dict[str, frozenset[str]] | None = None
    by_id: dict[str, tuple[str, ...]] | None = None

    def of(self, sample_id: str, gui_types: list, kind: str) -> list[str]:
        if self.by_id is not None:
            return list(self.by_id.get(sample_id, ())) or ["unclassified"]
        if kind == "refusal":
            return ["refusal"]
        types = {t for t in gui_types if isinstance(t, str)}
        return [c for c, listed in (self.by_type or {}).items() if types & listed]


def _bucket_error(path: Path, problem: str) -> LavError:
    return LavError(f"OSWorld-G category file {path}: {problem}; pass the benchmark's own file or remove it")


def read_osworld_buckets(folder: Path) -> Categories | None:
    """OSWorld-G's categories from ``classification_result.json`` beside the annotations (the file
    its own scripts read), else from ``buckets.json``, else None (see `Categories`)."""
    path = folder / "classification_result.json"
    if path.is_file():
        data = read_json(path, "OSWorld-G category file", expect=dict, fix="pass the benchmark's own file")
        classified = data.get("classified")
        if not isinstance(classified, dict):
            raise _bucket_error(path, "it has no 'classified' object of category -> samples")
        by_id: dict[str, tuple[str, ...]] = {}
        for name, members in classified.items():
            if not isinstance(members, list):
                raise _bucket_error(path, f"category {name!r} is not a list of samples")
            for m in members:
                sample = m.get("id") if isinstance(m, dict) else None
                if isinstance(sample, bool) or not isinstance(sample, (str, int)):
                    raise _bucket_error(path, f"category {name!r} holds {m!r}, not an object with an 'id'")
                by_id[str(sample)] = (*by_id.get(str(sample), ()), str(name))
        return Categories("classification_result.json", by_id=by_id)
    path = folder / "buckets.json"
    if path.is_file():
        data = read_json(path, "OSWorld-G category file", expect=dict, fix="pass the benchmark's own file")
        by_type: dict[str, frozenset[str]] = {}
        for name, types in data.items():
            if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
                raise _bucket_error(path, f"category {name!r} is not a list of GUI type names")
            by_type[str(name)] = frozenset(types)
        return Categories("buckets.json", by_type=by_type)
    return None


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
        categories = read_osworld_buckets(path.parent)
        placed = 0
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
            if categories is not None:
                # Several categories joined by '|' (GUI type names hold '/'); the summary's
                # official block counts a sample in each of them.
                gui_types = e.data.get("GUI_types")
                mine = categories.of(
                    ident(e, path.stem), gui_types if isinstance(gui_types, list) else [], kind
                )
                placed += bool(mine) and mine != ["unclassified"]
                groups["bucket"] = "|".join(mine) or "none"
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
        if categories is not None:
            out.notes.append(
                f"OSWorld-G categories from {categories.file}: {placed} of {len(found)} samples in at least one"
            )
            if categories.by_id is not None and (path.parent / "buckets.json").is_file():
                out.notes.append(
                    "OSWorld-G: buckets.json is there too; categories taken from classification_result.json, "
                    "the file OSWorld-G's own scripts read (--classification_path)"
                )
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
        source=(
            "Overall over all samples; per category (a sample in each of its own) from "
            "classification_result.json as OSWorld-G's qwen25_vllm_osworld_g.py reads it "
            "(--classification_path; evaluation/README.md l. 19-23 in the copy at "
            "Onifin/Holo3.1-OSWorld-G@0fbdd89), else from buckets.json as sjz5202/GUI-AIMA "
            "eval/osworld-g.py and ZJU-REAL/ClawGUI osworldg_metric.py read it"
        ),
        multi="bucket",
        names=CATEGORY_NAMES,
    ),
)
