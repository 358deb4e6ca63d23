"""UI-Vision element grounding (ServiceNow/ui-vision): ``element_grounding_{basic,functional,spatial}.json``
under ``<root>/annotations/element_grounding/`` beside ``<root>/images``; entries carry
``image_path``, ``prompt_to_evaluate``, ``bbox`` [x1, y1, x2, y2] px, ``image_size``, ``platform``
(the application), ``element_type`` and ``category``.
"""

from __future__ import annotations

from pathlib import Path

from ..entries import fit_note, ordered
from ..samples import Sample
from .base import Format, Parsed, ReadOptions, Spec, entries, ident, images_dir, json_files, no_files

GROUPS = ["split", "platform", "element_type", "category", "app_category"]

#: UI-Vision's six application categories and the applications (the entries' ``platform``) in
#: each, copied from uivision/UI-Vision ``mapdict_cat2platform.json`` l. 1-96 (commit b9d6536,
#: "map between app platforms and category"; unchanged at 2b79355), in its order. 83 applications,
#: none in two categories.
APP_CATEGORIES: dict[str, tuple[str, ...]] = {
    "Education": ("Anki", "Zotero", "GrassGIS", "Calibre", "Audacity", "QGIS", "OpenBoard", "Mendeley"),
    "Browsers": ("Brave", "Chromium", "Mozilla Firefox", "DuckDuckGo"),
    "Development": (
        "VSCode", "Atom", "FreeCAD", "Eclipse", "NetBeans", "PyCharm", "IntelliJ IDEA", "Brackets",
        "Geany", "Bluefish", "KDevelop", "Komodo Edit", "Code::Blocks", "Qt Creator", "Arduino IDE",
        "Spyder", "Ubuntu Terminal", "Conky", "Bash", "gedit",
    ),
    "Productivity": (
        "LibreOffice Calc", "LibreOffice Draw", "LibreOffice Impress", "LibreOffice Writer", "draw.io",
        "Joplin", "OpenProject", "Affine", "Zulip", "PDFedit", "OnlyOffice Calendar",
        "OnlyOffice Document Editor", "OnlyOffice Forms", "OnlyOffice PDF Forms",
        "OnlyOffice Presentation", "OnlyOffice Spreadsheet", "Nextcloud", "Gnumeric", "Simplenote",
        "Cryptomator", "WeKan", "7-Zip", "GnuCash", "Bitwarden", "Metabase", "Jitsi", "Flameshot", "Nemo",
    ),
    "Creativity": (
        "Blender", "GIMP", "Inkscape", "Krita", "darktable", "FontForge", "MuseScore", "Scribus",
        "OpenShot", "OBS Studio", "Lightworks", "Shotcut", "Natron", "OpenToonz", "WordPress",
    ),
    "Entertainment": ("VLC Media Player", "Kodi", "Element", "Signal", "Mastodon", "Lemmy", "Matrix", "Emby"),
}  # fmt: skip

# Matched without regard to case, as harnesses that vendor the map do ("Gedit", "Darktable").
_CATEGORY_OF = {app.casefold(): cat for cat, apps in APP_CATEGORIES.items() for app in apps}

#: An application the map does not list.
UNMAPPED = "unmapped"


def app_category(platform: str) -> str:
    """The category of the application ``platform`` in UI-Vision's map, else `UNMAPPED`."""
    return _CATEGORY_OF.get(platform.strip().casefold(), UNMAPPED)


def read_ui_vision(files: list[Path], images: Path) -> Parsed:
    """UI-Vision ``element_grounding_{basic,functional,spatial}.json``: ``bbox`` [x1, y1, x2, y2] px
    (reversed corners swapped, as the official script does), ``prompt_to_evaluate``."""
    out = Parsed()
    swapped_total = 0
    boxes, sizes = [], []
    unmapped: set[str] = set()
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
            groups = {"split": split, **e.groups(GROUPS[1:4])}
            if "platform" in groups:
                groups["app_category"] = app_category(groups["platform"])
                if groups["app_category"] == UNMAPPED:
                    unmapped.add(groups["platform"])
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
    if unmapped:
        names = ", ".join(sorted(unmapped))
        out.notes.append(
            f"UI-Vision: platform(s) not in its category map (mapdict_cat2platform.json), counted as "
            f"'{UNMAPPED}': {names}"
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
    # eval/grounding/eval_uivision.py scores one file per run (evaluate_overall_simple, l. 138-151;
    # a point is right inside the box swapped and divided by image_size, l. 154-174); the README's
    # table (l. 26) gives each file's "Overall" and their mean, "Final Avg". The paper's category
    # columns: each file's accuracy per application category, the category of each sample's
    # platform in mapdict_cat2platform.json (`APP_CATEGORIES`).
    official=Spec(
        "UI-Vision",
        micro="micro (all samples; not in the paper's table)",
        macro="Final Avg",
        macro_over=("split",),
        tables=(("split", "app_category"), ("split", "element_type")),
        source=(
            "uivision/UI-Vision eval/grounding/eval_uivision.py l. 138-174 (one file per run), "
            "README.md l. 26 (Basic / Functional / Spatial Overall, Final Avg), "
            "mapdict_cat2platform.json (application categories)"
        ),
        names=tuple((c, c) for c in APP_CATEGORIES) + ((UNMAPPED, UNMAPPED),),
    ),
)
