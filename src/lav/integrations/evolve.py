"""`evolve`: the probe-set metrics of every saved checkpoint of a LoRA run, and the page that shows them.

The base model is loaded once; each checkpoint's adapter is put on it in turn (`lav.loading.load_adapter`)
and taken off again (``unload``), and the probe set runs through `lav.eval.evaluate`, so each
checkpoint gets a ``lav eval`` folder of its own (``<out>/<checkpoint>/``: samples.jsonl, summary.json,
report.html and every sample's `Result` under ``samples/``; rerunning resumes). The base model's run,
``<out>/base/``, is the reference line. Then, in ``<out>``:

- ``evolution.json``: one row per checkpoint (sorted by step) with accuracy, its 95% Wilson interval
  and per decoder layer the pointing game and the focus mass in the box; the base row beside;
- ``evolution.csv``: the same table, flat;
- ``report.html`` (`lav.integrations.evolve_report`): curves per layer and a filmstrip per sample.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import jsonsafe
from ..errors import InputError
from ..livefolder import OutputFolder
from ..options import AnalysisOptions, options_from

EVOLUTION_FILE = "evolution.json"
TABLE_FILE = "evolution.csv"
BASE_DIR = "base"

_STEP = re.compile(r"checkpoint-(\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    """One saved adapter: its folder, its training step (None when unknown) and a label."""

    path: Path
    step: int | None
    label: str


def find_checkpoints(paths: Sequence[str | os.PathLike]) -> list[Checkpoint]:
    """The adapters in ``paths`` sorted by step (unknown steps last, in the order given).

    A path is an adapter folder (``adapter_config.json``: a Trainer's ``checkpoint-N`` of a PEFT
    model, or a folder written by ``save_pretrained``) or a run folder holding ``checkpoint-*``
    folders. The step comes from the name ``checkpoint-N``, else from ``trainer_state.json``.
    """
    folders: list[Path] = []
    for p in map(Path, paths):
        if (p / "adapter_config.json").is_file():
            folders.append(p)
        elif p.is_dir() and any(p.glob("checkpoint-*/adapter_config.json")):
            folders.extend(sorted(c.parent for c in p.glob("checkpoint-*/adapter_config.json")))
        else:
            raise InputError(
                f"{p} is not a LoRA adapter folder (no adapter_config.json) nor a run folder with "
                "checkpoint-* adapters; pass the checkpoints a PEFT Trainer run saved"
            )
    found = [Checkpoint(f, _step_of(f), f.name) for f in folders]
    labels = [c.label for c in found]
    if len(set(labels)) != len(labels):
        raise InputError(f"two checkpoints share the folder name {labels}; pass each run's checkpoints once")
    if BASE_DIR in labels:
        raise InputError(f"a checkpoint folder may not be called {BASE_DIR!r} (the base model's run)")
    order = {c.path: n for n, c in enumerate(found)}
    return sorted(found, key=lambda c: (c.step is None, c.step or 0, order[c.path]))


def _step_of(folder: Path) -> int | None:
    m = _STEP.search(folder.name)
    if m:
        return int(m.group(1))
    state = folder / "trainer_state.json"
    if state.is_file():
        try:
            return int(jsonsafe.loads(state.read_text(encoding="utf-8"))["global_step"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return None


def row(label: str, step: int | None, summary: dict[str, Any]) -> dict[str, Any]:
    """One line of the evolution table from a ``lav eval`` summary."""
    return {
        "checkpoint": label,
        "step": step,
        "n": summary["n"],
        "correct": summary["correct"],
        "accuracy": summary["accuracy"],
        "ci95": summary["ci95"],
        "wrong_format": summary["wrong_format"],
        "chance": summary.get("chance"),
        "layers": summary["layers"],
    }


def table_csv(rows: Sequence[dict[str, Any]]) -> str:
    """``evolution.csv``: checkpoint, step, accuracy, then pointing / mass per map and layer."""
    cols: list[str] = []
    for r in rows:
        for kind, layers in r["layers"].items():
            for lr in layers:
                for metric in ("pointing", "mass"):
                    name = f"{kind}_{metric}_layer_{lr['layer']}"
                    if name not in cols:
                        cols.append(name)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["checkpoint", "step", "n", "correct", "accuracy", "ci95_low", "ci95_high", *cols])
    for r in rows:
        values = {
            f"{kind}_{metric}_layer_{lr['layer']}": lr[metric]
            for kind, layers in r["layers"].items()
            for lr in layers
            for metric in ("pointing", "mass")
        }
        ci = r["ci95"] or [None, None]
        writer.writerow(
            [r["checkpoint"], r["step"], r["n"], r["correct"], r["accuracy"], *ci]
            + ["" if values.get(c) is None else values[c] for c in cols]
        )
    return buf.getvalue()


def evolve(
    model: str | os.PathLike,
    checkpoints: Sequence[str | os.PathLike],
    probe,
    out: str | os.PathLike,
    *,
    compare_base: bool = True,
    batch_size: int = 8,
    edge_layers=(-2, -1),
    focus_layers="all",
    max_new_tokens: int | None = None,
    coords: str | None = None,
    system: str | None = None,
    template: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    attn_implementation: str = "sdpa",
    max_image_pixels: int | None = None,
    placement: dict[str, Any] | None = None,
    limit: int | None = None,
    progress: bool | None = False,
    say: Callable[[str], None] = lambda msg: None,
    options: AnalysisOptions | None = None,
) -> dict[str, Any]:
    """Evaluate ``probe`` (a path any ``lav eval`` format reads, or a list of ``{image, instruction,
    bbox}``) with the base ``model`` and each adapter of ``checkpoints``; write ``out``. The evolution.

    ``progress``: a progress line per run as `lav.evaluate` writes it (None: a bar on a terminal).
    ``options``: the analysis options as one `lav.AnalysisOptions` instead of the keywords
    (``compare_base`` stays this function's own: whether the base model is evaluated too).
    """
    analysis = options_from(
        options,
        {
            "edge_layers": edge_layers,
            "focus_layers": focus_layers,
            "max_new_tokens": max_new_tokens,
            "coords": coords,
            "system": system,
            "template": template,
        },
        defaults={"focus_layers": "all"},
    )
    from ..eval.datasets import Dataset, check_images, load_dataset
    from ..eval.engine import evaluate
    from ..loading import load, load_adapter
    from .evolve_report import evolve_page
    from .probe import load_probe

    found = find_checkpoints(checkpoints)
    if isinstance(probe, (str, os.PathLike)):
        dataset = check_images(load_dataset(probe, limit=limit))
    else:
        dataset = Dataset(name="probe", format="probe", samples=tuple(load_probe(probe, limit=limit)))
    # Checked and locked before the model loads (one line if it holds files lav did not write);
    # each run below is a lav eval folder nested in it, listed before it is written.
    with OutputFolder(out) as folder:
        run_options = {"batch_size": batch_size, "save_maps": True, "progress": progress, "options": analysis}
        # What evolution.json records (its keys as they always were).
        recorded = {
            "batch_size": batch_size,
            "edge_layers": analysis.edge_layers,
            "focus_layers": analysis.focus_layers,
            "max_new_tokens": analysis.max_new_tokens,
            "coords": analysis.coords,
            "system": analysis.system,
            "template": analysis.template,
            "save_maps": True,
            "progress": progress,
        }
        say(f"loading {model}")
        extra = {} if max_image_pixels is None else {"max_image_pixels": max_image_pixels}
        extra.update(placement or {})  # lav.load's device_map, offload_folder, max_memory, load_in_4bit/8bit
        base = load(model, device=device, dtype=dtype, attn_implementation=attn_implementation, **extra)
        base_row = None
        if compare_base:
            say(f"base model: {len(dataset)} samples")
            ev = evaluate(base, dataset, folder.nested(BASE_DIR), **run_options)
            base_row = row("base", None, ev.summary)
        rows = []
        from ..analysis import Visualizer

        for ckpt in found:
            say(f"{ckpt.label}: {len(dataset)} samples")
            wrapped = load_adapter(base.model, ckpt.path, model_name=base.model_name)
            try:
                viz = Visualizer(
                    wrapped,
                    base.processor,
                    model_name=base.model_name,
                    adapter_name=str(ckpt.path),
                    max_image_pixels=base.max_image_pixels,
                )
                # The base's preset (prompt, resize, refusals) holds for every checkpoint of it.
                viz.preset, viz.image_pixels, viz.answer_rules = (
                    base.preset,
                    base.image_pixels,
                    base.answer_rules,
                )
                ev = evaluate(viz, dataset, folder.nested(ckpt.label), **run_options)
            finally:
                # Take the LoRA layers off again: the next checkpoint goes onto the plain base model.
                wrapped.unload()
            rows.append(row(ckpt.label, ckpt.step, ev.summary))
        evolution = {
            "model": base.model_name,
            "dataset": dataset.name,
            "format": dataset.format,
            "samples": [s.id for s in dataset.samples],
            "options": {
                k: v if isinstance(v, (str, int, bool, type(None))) else list(v) for k, v in recorded.items()
            },
            "base": base_row,
            "checkpoints": rows,
        }
        folder.write_text(EVOLUTION_FILE, json.dumps(evolution, indent=2, allow_nan=False) + "\n")
        folder.write_text(TABLE_FILE, table_csv(([base_row] if base_row else []) + rows))
        folder.write_text("report.html", evolve_page(evolution, folder.path))
    return evolution
