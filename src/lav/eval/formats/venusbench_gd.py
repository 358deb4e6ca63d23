"""VenusBench-GD (inclusionAI/UI-Venus branch VenusBench-GD, ``README.md`` layout and ``eval.py``).

``instruction/<task>.json`` lists entries with ``img_filename`` (relative to the images folder,
l. 410-411), ``bbox`` [x1, y1, x2, y2] pixels (l. 157-162), ``instruction``, ``instruction_zh``,
``platform``, ``application``, ``ui_type``; ``img_size`` is replaced by the opened image's size
(l. 416-418: ``size_rule`` "stored"). Negatives are right only when the answer is a refusal
(l. 173-179); lav takes the entries of ``refusal_*.json`` (README: ``refusal_spatial.json``) and any
``gt_type: negative`` entry as negatives. (eval.py sets ``gt_type`` per run from ``--gt_type``, not
per file: l. 388-393; its ``scripts/run_eval.sh`` l. 15 passes ``positive``. lav reads the refusal
file as a ``--gt_type negative`` run over it would score it.)

The paper (arXiv 2512.16501) splits the six tasks into Basic and Advanced, but neither eval.py, the
branch's README nor scripts say which task file is which level, so no Basic / Advanced average is
given (branch VenusBench-GD at 56b1005; UI-Venus-1.5's scripts only name a ``basic_instruction/``
folder).
"""

from __future__ import annotations

from pathlib import Path

from ..samples import Sample
from .base import Format, Parsed, ReadOptions, Spec, entries, ident, images_dir, json_files, no_files
from .screenspot import FIELDS

GROUPS = ["split", "platform", "application", "ui_type", "group"]


def read_venusbench_gd(files: list[Path], images: Path) -> Parsed:
    """VenusBench-GD ``instruction/*.json``; ``refusal_*.json`` entries are negatives."""
    what = "VenusBench-GD annotation file"
    out = Parsed()
    negatives = 0
    for path in files:
        refusal_file = path.stem.startswith("refusal")
        for e in entries(path, what):
            gt = e.data.get("gt_type", "negative" if refusal_file else "positive")
            if gt not in ("positive", "negative"):
                raise e.error(f"is {gt!r}, not 'positive' or 'negative'", "gt_type")
            negatives += gt == "negative"
            box = written = None
            if gt == "positive":
                # Taken as written (eval.py l. 158-168, ScreenSpot-Pro's rule): reversed corners
                # are never hit; ``box`` keeps them in order for the maps.
                x1, y1, x2, y2 = e.numbers("bbox")
                written = (x1, y1, x2, y2)
                box = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
            groups = {"split": path.stem, **e.groups(GROUPS[1:])}
            out.samples.append(
                Sample(
                    id=ident(e, path.stem, ("id", "index")),
                    image=images / e.text("img_filename"),
                    instruction=e.text("instruction"),
                    target="box" if gt == "positive" else "negative",
                    box=box,
                    groups=groups,
                    size_rule="stored",
                    written=written,
                )
            )
            out.add_groups([g for g in GROUPS if g in groups])
    out.notes.append(
        f"VenusBench-GD: bbox read as [x1, y1, x2, y2] pixels from {len(files)} task file(s), divided by "
        "the stored image's size (eval.py l. 416-418)"
    )
    if negatives:
        out.notes.append(
            f"{negatives} negative sample(s) (refusal files): right only when the answer is a refusal"
        )
    return out


def _files(folder: Path) -> list[Path]:
    """VenusBench-GD's task files: ``instruction/*.json`` (README.md layout)."""
    where = folder / "instruction" if (folder / "instruction").is_dir() else folder
    files = json_files(where)
    if any(f.stem.endswith("_grounding") for f in files):
        return [f for f in files if f.stem.endswith("_grounding") or f.stem.startswith("refusal")]
    return []


def _read(p: Path, options: ReadOptions) -> Parsed:
    files = _files(p) if p.is_dir() else [p]
    if not files:
        raise no_files("VenusBench-GD", p, "instruction/*_grounding.json")
    root = files[0].parent.parent if files[0].parent.name == "instruction" else files[0].parent
    return read_venusbench_gd(files, images_dir(options.images, [root / "images", root]))


FORMAT = Format(
    name="venusbench-gd",
    layout="instruction/*_grounding.json",
    read=_read,
    rank=20,
    by_layout=lambda p: bool(_files(p)),
    by_fields=lambda common, p: common >= FIELDS and p.parent.name == "instruction",
    # eval.py (ScreenSpot-Pro's functions, l. 132-330): action_acc with text_acc / icon_acc overall
    # (l. 132-154, 316-329: the tables' bottom lines), per platform (l. 220-254), per application
    # (l. 256-284) and per group (l. 286-314); lav adds the task files.
    official=Spec(
        "VenusBench-GD",
        micro="action_acc (overall)",
        macro="macro (mean of the task files; not in the paper's table)",
        macro_over=("split",),
        tables=(
            ("split", "ui_type"),
            ("platform", "ui_type"),
            ("application", "ui_type"),
            ("group", "ui_type"),
        ),
        source="inclusionAI/UI-Venus@VenusBench-GD eval.py l. 132-330",
    ),
)
