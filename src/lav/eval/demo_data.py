"""`lav demo-data`: a small synthetic benchmark in ScreenSpot-Pro's layout, made from the demo screens.

``annotations/<application>_<platform>.json`` + ``images/<application>_<platform>/<id>.png``, one
annotation file per demo task: ``shapes-base`` (the base model's colours) and ``shapes-adapter``
(purple and orange, the words only the shipped adapter learned). Each entry has ScreenSpot-Pro's
fields; ``group`` is the task, so an evaluation's table by group shows what the adapter changed.
About one sample in ten is ``gt_type: negative``: the instruction names a shape of the task's
colours that is not on the screen, so the right answer is to say so and not click.
Screens come from held-out seeds only (`lav.demo.screens.held_out`), never from training ones.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from ..errors import LavError
from ..outdir import write_output_folder

PLATFORM = "linux"
_CN_COLOURS = {
    "red": "红色",
    "green": "绿色",
    "blue": "蓝色",
    "yellow": "黄色",
    "purple": "紫色",
    "orange": "橙色",
}
_CN_SHAPES = {"circle": "圆形", "square": "正方形", "triangle": "三角形"}
# Held-out seeds per `seed` argument: far apart, so benchmarks of different seeds never share a screen.
_SEED_STRIDE = 1_000_000


def _negatives(n: int) -> int:
    return max(1, round(n / 10)) if n >= 4 else 0


def write_demo_benchmark(out: str | os.PathLike, n: int = 40, seed: int = 0) -> Path:
    """Write ``n`` demo samples (half per task, ~10% negative) to the folder ``out``; returns its path.

    Same ``n`` and ``seed``, same files. ``out`` must be new, empty or an earlier lav output: lav
    never overwrites files it did not write (`lav.outdir.write_output_folder`).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise LavError(f"n must be a whole number of samples, at least 2 (one per task), got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise LavError(f"seed must be a whole number >= 0, got {seed!r}")
    from ..demo.screens import BASE_COLOURS, NEW_COLOURS, SHAPES, TASKS, held_out

    colours = {"base": list(BASE_COLOURS), "adapter": list(NEW_COLOURS)}
    sizes = {"base": n - n // 2, "adapter": n // 2}

    def write(folder: Path) -> None:
        (folder / "annotations").mkdir()
        for task in TASKS:
            app = f"shapes-{task}"
            stem = f"{app}_{PLATFORM}"
            (folder / "images" / stem).mkdir(parents=True)
            count = sizes[task]
            screens = held_out(count, task, start=seed * _SEED_STRIDE)
            rng = random.Random(f"lav-demo-data/{task}/{seed}/{count}")
            negative = set(rng.sample(range(count), _negatives(count)))
            entries = []
            for k, screen in enumerate(screens):
                ident = f"{app}-{k:04d}"
                rel = f"{stem}/{ident}.png"
                screen.image.save(folder / "images" / rel)
                # The screen's box ends are exclusive pixel indices; as ScreenSpot-Pro's inclusive
                # [x1, y1, x2, y2] they bound the same area, so a click scores as `Screen.contains`.
                entry = {
                    "id": ident,
                    "img_filename": rel,
                    "bbox": list(screen.box),
                    "img_size": list(screen.image.size),
                    "instruction": screen.instruction,
                    "instruction_cn": f"点击{_CN_COLOURS[screen.colour]}{_CN_SHAPES[screen.shape]}",
                    "application": app,
                    "platform": PLATFORM,
                    "group": task,
                    "ui_type": "icon",
                    "gt_type": "positive",
                }
                on_screen = {(c, s) for c, s, _ in screen.shapes}
                absent = [(c, s) for c in colours[task] for s in SHAPES if (c, s) not in on_screen]
                if k in negative and absent:
                    colour, shape = rng.choice(absent)
                    del entry["bbox"]
                    entry.update(
                        instruction=f"Click the {colour} {shape}",
                        instruction_cn=f"点击{_CN_COLOURS[colour]}{_CN_SHAPES[shape]}",
                        gt_type="negative",
                    )
                entries.append(entry)
            text = json.dumps(entries, indent=1, ensure_ascii=False) + "\n"
            (folder / "annotations" / f"{stem}.json").write_text(text, encoding="utf-8")

    return write_output_folder(out, write)
