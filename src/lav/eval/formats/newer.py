"""The newest GUI-grounding benchmarks: MMBench-GUI L2 and VenusBench-GD.

Both divide the box by the size of the image file their script opens (``size_rule`` "stored"):

- MMBench-GUI L2 (open-compass/MMBench-GUI ``benchmarks/l2_element_grounding.py``):
  ``L2_annotations.json`` is a JSON list (l. 110-111); ``image_path`` is relative to
  ``offline_images/<platform>/`` (l. 61, 66-70); ``bbox`` is [x1, y1, x2, y2] in pixels or, per
  entry, in 0-1 (``is_normalized``, l. 188-207); a -1 is taken as 0 (``make_safe``, l. 181-186);
  pixels are divided by the opened image's size (l. 178-179, 203-207); a box out of [0, 1] after
  that stops the script (l. 210-213). Grouped by ``grounding_type`` (basic / advanced),
  ``platform``, ``data_type`` (text / icon), ``app_name`` (l. 216-263).
- VenusBench-GD (inclusionAI/UI-Venus branch VenusBench-GD, ``README.md`` layout and ``eval.py``):
  ``instruction/<task>.json`` lists entries with ``img_filename`` (relative to the images folder,
  l. 410-411), ``bbox`` [x1, y1, x2, y2] pixels (l. 157-162), ``instruction``, ``instruction_zh``,
  ``platform``, ``application``, ``ui_type``; ``img_size`` is replaced by the opened image's size
  (l. 416-418). Negatives are right only when the answer is a refusal (l. 173-179); lav takes the
  entries of ``refusal_*.json`` (README: ``refusal_spatial.json``) and any ``gt_type: negative``
  entry as negatives.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import LavError
from ...files import read_json
from ..entries import Entry
from ..samples import Sample
from .benchmarks import Parsed

MMBENCH_GROUPS = ["grounding_type", "platform", "data_type", "app_name", "category"]
VENUS_GROUPS = ["split", "platform", "application", "ui_type", "group"]


def _file_size(path: Path) -> tuple[int, int] | None:
    """The (width, height) of the image file at ``path`` from its header, None when unreadable
    (the sample is then an error at evaluation time)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, UnidentifiedImageError):
        return None


def _entries(path: Path, what: str) -> list[Entry]:
    data = read_json(path, what, expect=list, fix="pass the benchmark's own annotation file")
    return [Entry(path, i, item, what) for i, item in enumerate(data)]


def _ident(e: Entry, stem: str) -> str:
    for name in ("id", "index"):
        value = e.data.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise e.error(f"is {value!r}, not a string or integer", name)
            return str(value)
    return f"{stem}:{e.index}"


def read_mmbench_gui(path: Path, images: Path) -> Parsed:
    """MMBench-GUI ``L2_annotations.json`` with images under ``images/<platform>/``."""
    what = "MMBench-GUI L2 annotation file"
    out = Parsed()
    fractions = 0
    for e in _entries(path, what):
        platform = e.text("platform")
        image = images / platform / e.text("image_path")
        raw = [0.0 if v == -1 else v for v in e.numbers("bbox")]
        normalized = all(0.0 <= v <= 1.0 for v in raw)
        size = _file_size(image)
        if normalized:
            fractions += 1
            # A box already in 0-1 is compared as it is; lav keeps boxes in pixels of the stored
            # image, which gives the same fractions back.
            w, h = size or (1, 1)
            box = (raw[0] * w, raw[1] * h, raw[2] * w, raw[3] * h)
        else:
            box = (raw[0], raw[1], raw[2], raw[3])
            if size is not None and (box[2] > size[0] or box[3] > size[1] or min(box) < 0):
                raise e.error(
                    f"is {e.data['bbox']!r}: out of the {size[0]}x{size[1]} image after dividing by its "
                    "size (the official script stops on it, l. 210-213)",
                    "bbox",
                )
        groups = e.groups(MMBENCH_GROUPS)
        out.samples.append(
            Sample(
                id=_ident(e, path.stem),
                image=image,
                instruction=e.text("instruction"),
                target="box",
                box=box,
                groups=groups,
                size_rule="stored",
            )
        )
        out.add_groups([g for g in MMBENCH_GROUPS if g in groups])
    out.notes.append(
        f"MMBench-GUI L2: bbox read as [x1, y1, x2, y2], {fractions} of {len(out.samples)} in 0-1 and "
        "the rest in pixels, -1 taken as 0; divided by the stored image's size (l2_element_grounding.py)"
    )
    return out


def read_venusbench_gd(files: list[Path], images: Path) -> Parsed:
    """VenusBench-GD ``instruction/*.json``; ``refusal_*.json`` entries are negatives."""
    what = "VenusBench-GD annotation file"
    out = Parsed()
    negatives = 0
    for path in files:
        refusal_file = path.stem.startswith("refusal")
        for e in _entries(path, what):
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
            groups = {"split": path.stem, **e.groups(VENUS_GROUPS[1:])}
            out.samples.append(
                Sample(
                    id=_ident(e, path.stem),
                    image=images / e.text("img_filename"),
                    instruction=e.text("instruction"),
                    target="box" if gt == "positive" else "negative",
                    box=box,
                    groups=groups,
                    size_rule="stored",
                    written=written,
                )
            )
            out.add_groups([g for g in VENUS_GROUPS if g in groups])
    out.notes.append(
        f"VenusBench-GD: bbox read as [x1, y1, x2, y2] pixels from {len(files)} task file(s), divided by "
        "the stored image's size (eval.py l. 416-418)"
    )
    if negatives:
        out.notes.append(
            f"{negatives} negative sample(s) (refusal files): right only when the answer is a refusal"
        )
    return out


def no_l2(where: Path) -> LavError:
    return LavError(f"found no L2_annotations.json in {where}; pass the MMBench-GUI folder or that file")


#: Where OSWorld-G's categories (Text Matching, Element Recognition, Layout Understanding,
#: Fine-grained Manipulation, Refusal: the columns of its paper's table) may lie beside the
#: annotation file. A sample can be in several.
OSWORLD_BUCKET_FILES = ("buckets.json", "classification_result.json")


def read_osworld_buckets(folder: Path) -> tuple[dict[str, list[str]], str | None]:
    """``{sample id: [bucket, ...]}`` from the first of `OSWORLD_BUCKET_FILES` in ``folder``, and
    that file's name (``{}, None`` when there is none).

    Read as ``{"classified": {bucket: [id or {"id": id}, ...]}}`` (the shape third-party loaders of
    the upstream ``classification_result.json`` read) or the same mapping at the top level.
    """
    for name in OSWORLD_BUCKET_FILES:
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
                ident = m.get("id") if isinstance(m, dict) else m
                if isinstance(ident, bool) or not isinstance(ident, (str, int)):
                    raise LavError(
                        f"{what} {path}: bucket {bucket!r} holds {m!r}, not a sample id; remove the file"
                    )
                out.setdefault(str(ident), []).append(str(bucket))
        return out, name
    return {}, None
