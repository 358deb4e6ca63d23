"""ScreenSpot-Pro (likaixin2000/ScreenSpot-Pro-GUI-Grounding): ``annotations/<app>_<os>.json`` beside
``images/``; entries carry ``img_filename``, ``instruction``, ``bbox`` [x1, y1, x2, y2] px,
``img_size``, ``application``, ``platform``, ``ui_type``, ``group`` and ``gt_type``.
"""

from __future__ import annotations

from pathlib import Path

from ..entries import fit_note, ordered
from ..samples import Sample
from .base import Format, Parsed, ReadOptions, Spec, entries, ident, images_dir, json_files, no_files
from .screenspot import FIELDS

GROUPS = ["split", "group", "application", "platform", "ui_type", "gt_type"]


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
        for e in entries(path, "ScreenSpot-Pro annotation file"):
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
            groups = {"split": path.stem, **e.groups(GROUPS[1:])}
            out.samples.append(
                Sample(
                    id=ident(e, path.stem),
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
            out.add_groups([g for g in GROUPS if g in groups])
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


def _read(p: Path, options: ReadOptions) -> Parsed:
    if p.is_dir():
        root = p if (p / "annotations").is_dir() else p.parent
        files = json_files(root / "annotations") if (root / "annotations").is_dir() else json_files(p)
    else:
        root, files = (p.parent.parent if p.parent.name == "annotations" else p.parent), [p]
    if not files:
        raise no_files("ScreenSpot-Pro", p, "annotations/*.json")
    return read_screenspot_pro(files, images_dir(options.images, [root / "images", root]))


def _by_fields(common: frozenset[str], p: Path) -> bool:
    return common >= FIELDS and ("application" in common or p.parent.name == "annotations")


FORMAT = Format(
    name="screenspot-pro",
    layout="a folder with annotations/ and images/",
    read=_read,
    rank=50,
    by_layout=lambda p: (p / "annotations").is_dir() and bool(json_files(p / "annotations")),
    by_fields=_by_fields,
    # eval_screenspot_pro.py: evaluate_overall (l. 297) is the micro "Avg";
    # evaluate_leaderboard_simple_style (l. 267, by group) and _detailed_style (l. 237, by
    # application) each with text_acc / icon_acc (calc_metric_for_result_list l. 112-134).
    official=Spec(
        "ScreenSpot-Pro",
        micro="Avg",
        macro="macro (mean of the group x ui_type cells; not in the paper's table)",
        macro_over=("group", "ui_type"),
        tables=(("group", "ui_type"), ("application", "ui_type")),
        source="likaixin2000/ScreenSpot-Pro-GUI-Grounding eval_screenspot_pro.py l. 237-310",
        names=(("text", "text"), ("icon", "icon")),  # the table's Text before Icon
    ),
)
