"""MMBench-GUI L2 element grounding (open-compass/MMBench-GUI ``benchmarks/l2_element_grounding.py``).

``L2_annotations.json`` is a JSON list (l. 110-111); ``image_path`` is relative to
``offline_images/<platform>/`` (l. 61, 66-70); ``bbox`` is [x1, y1, x2, y2] in pixels or, per entry,
in 0-1 (``is_normalized``, l. 188-207); a -1 is taken as 0 (``make_safe``, l. 181-186); pixels are
divided by the opened image's size (l. 178-179, 203-207: ``size_rule`` "stored"); a box out of
[0, 1] after that stops the script (l. 210-213). Grouped by ``grounding_type`` (basic / advanced),
``platform``, ``data_type`` (text / icon), ``app_name`` (l. 216-263).
"""

from __future__ import annotations

from pathlib import Path

from ...errors import LavError
from ..samples import Sample
from .base import Format, Parsed, ReadOptions, Spec, entries, file_size, ident, images_dir

GROUPS = ["grounding_type", "platform", "data_type", "app_name", "category"]


def read_mmbench_gui(path: Path, images: Path) -> Parsed:
    """MMBench-GUI ``L2_annotations.json`` with images under ``images/<platform>/``."""
    what = "MMBench-GUI L2 annotation file"
    out = Parsed()
    fractions = 0
    for e in entries(path, what):
        platform = e.text("platform")
        image = images / platform / e.text("image_path")
        raw = [0.0 if v == -1 else v for v in e.numbers("bbox")]
        normalized = all(0.0 <= v <= 1.0 for v in raw)
        size = file_size(image)
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
        groups = e.groups(GROUPS)
        out.samples.append(
            Sample(
                id=ident(e, path.stem, ("id", "index")),
                image=image,
                instruction=e.text("instruction"),
                target="box",
                box=box,
                groups=groups,
                size_rule="stored",
            )
        )
        out.add_groups([g for g in GROUPS if g in groups])
    out.notes.append(
        f"MMBench-GUI L2: bbox read as [x1, y1, x2, y2], {fractions} of {len(out.samples)} in 0-1 and "
        "the rest in pixels, -1 taken as 0; divided by the stored image's size (l2_element_grounding.py)"
    )
    return out


def _read(p: Path, options: ReadOptions) -> Parsed:
    file = p / "L2_annotations.json" if p.is_dir() else p
    if not file.is_file():
        raise LavError(f"found no L2_annotations.json in {p}; pass the MMBench-GUI folder or that file")
    return read_mmbench_gui(file, images_dir(options.images, [file.parent / "offline_images", file.parent]))


FORMAT = Format(
    name="mmbench-gui",
    layout="L2_annotations.json",
    read=_read,
    rank=10,
    by_name=lambda p: p.name.lower() == "l2_annotations.json",
    by_layout=lambda p: (p / "L2_annotations.json").is_file(),
    by_fields=lambda common, p: {"grounding_type", "platform", "image_path", "bbox"} <= common,
    # benchmarks/matrics.py level2_calculate_scores (l. 91-167): per grounding_type x platform
    # cells, "Basic accuracy" / "Advanced accuracy" micro within the level, "Average accuracy" the
    # mean of the two levels.
    official=Spec(
        "MMBench-GUI L2",
        micro="micro (all samples; not in the paper's table)",
        macro="Average accuracy",
        macro_over=("grounding_type",),
        tables=(("grounding_type", "platform"), ("platform", "data_type")),
        source="open-compass/MMBench-GUI benchmarks/matrics.py l. 91-167",
        # The platform folders (README.md l. 90-99, the entries' ``platform``) as README.md l. 31
        # names the platforms, in its order.
        names=(
            ("os_windows", "Windows"),
            ("os_mac", "macOS"),
            ("os_linux", "Linux"),
            ("os_ios", "iOS"),
            ("os_android", "Android"),
            ("os_web", "Web"),
        ),
    ),
)
