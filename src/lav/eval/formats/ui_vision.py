"""UI-Vision element grounding (ServiceNow/ui-vision): ``element_grounding_{basic,functional,spatial}.json``
under ``<root>/annotations/element_grounding/`` beside ``<root>/images``; entries carry
``image_path``, ``prompt_to_evaluate``, ``bbox`` [x1, y1, x2, y2] px, ``image_size``, ``platform``,
``element_type`` and ``category``.
"""

from __future__ import annotations

from pathlib import Path

from ..entries import fit_note, ordered
from ..samples import Sample
from .base import Format, Parsed, ReadOptions, Spec, entries, ident, images_dir, json_files, no_files

GROUPS = ["split", "platform", "element_type", "category"]


def read_ui_vision(files: list[Path], images: Path) -> Parsed:
    """UI-Vision ``element_grounding_{basic,functional,spatial}.json``: ``bbox`` [x1, y1, x2, y2] px
    (reversed corners swapped, as the official script does), ``prompt_to_evaluate``."""
    out = Parsed()
    swapped_total = 0
    boxes, sizes = [], []
    for path in files:
        split = path.stem.removeprefix("element_grounding_")
        for e in entries(path, "UI-Vision annotation file"):
            # eval_uivision.py eval_sample_positive_gt: reversed corners swapped, then divided by
            # the annotation's image_size (EVAL.md: l. ~155-162).
            box, swapped = ordered(e.numbers("bbox"))
            swapped_total += swapped
            size = e.size("image_size")
            boxes.append(box)
            sizes.append(size)
            groups = {"split": split, **e.groups(GROUPS[1:])}
            out.samples.append(
                Sample(
                    id=ident(e, path.stem),
                    image=images / e.text("image_path"),
                    instruction=e.text("prompt_to_evaluate", "instruction"),
                    target="box",
                    box=box,
                    image_size=size,
                    groups=groups,
                    size_rule="stored" if size is None else "annotated",
                )
            )
            out.add_groups([g for g in GROUPS if g in groups])
    out.notes += fit_note("UI-Vision", boxes, sizes)
    out.notes.append(
        "bbox read as [x1, y1, x2, y2] pixels (UI-Vision); prompt_to_evaluate is the instruction"
    )
    if swapped_total:
        out.notes.append(
            f"UI-Vision: {swapped_total} box(es) had reversed corners (x2 < x1 or y2 < y1): swapped, "
            "as its official script does"
        )
    return out


def _files(folder: Path) -> list[Path]:
    for where in (folder, folder / "element_grounding", folder / "annotations" / "element_grounding"):
        files = [f for f in json_files(where) if f.name.startswith("element_grounding_")]
        if files:
            return files
    return []


def _read(p: Path, options: ReadOptions) -> Parsed:
    files = (_files(p) or json_files(p)) if p.is_dir() else [p]
    if not files:
        raise no_files("UI-Vision", p, "element_grounding_*.json")
    folder = p if p.is_dir() else p.parent
    # Official layout: <root>/annotations/element_grounding/*.json beside <root>/images.
    roots = [files[0].parent, *files[0].parent.parents][:4]
    return read_ui_vision(files, images_dir(options.images, [r / "images" for r in roots] + [folder]))


FORMAT = Format(
    name="ui-vision",
    layout="element_grounding_*.json",
    read=_read,
    rank=40,
    by_name=lambda p: p.name.lower().startswith("element_grounding_") and p.suffix == ".json",
    by_layout=lambda p: bool(_files(p)),
    by_fields=lambda common, p: {"prompt_to_evaluate", "bbox", "image_path"} <= common,
    # eval/grounding/eval_uivision.py scores one file per run (evaluate_overall_simple); the
    # paper's "Final Avg" is the mean of the three files (macro).
    official=Spec(
        "UI-Vision",
        micro="micro (all samples; not in the paper's table)",
        macro="Final Avg",
        macro_over=("split",),
        tables=(("split", "category"), ("split", "element_type")),
        source="ServiceNow/ui-vision eval/grounding/eval_uivision.py (one file per run); paper's Final Avg",
    ),
)
