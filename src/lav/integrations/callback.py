"""`LavCallback`: where the model looks on a probe set, every N training steps, logged as it trains.

A `transformers.TrainerCallback` for `Trainer` and TRL's trainers. Every ``every_n_steps`` optimizer
steps (and after each evaluation) it runs `Visualizer.analyze_many` on the probe set with the model
as it is, and

- logs scalars (click accuracy; per decoder layer the pointing game and the focus mass in the
  target box) and overlays (focus and click, adapter beside base, each panel labelled, with the
  decoder layers the focus averages) to TensorBoard and W&B (see `lav.integrations.reporters`; when
  ``report_to`` names neither, it says so once), with the adapter on and, from the first call
  (cached: a LoRA leaves the base weights frozen), off;
- saves the step like a ``lav eval`` folder: ``output_dir/lav/step-N/`` holds ``samples.jsonl``,
  ``summary.json``, ``report.html``, ``thumbs/`` and each sample's `Result` folder under
  ``samples/`` (`Result.load` reads it back).

It does not change training: the analysis runs under ``inference_mode`` (no gradient, no graph),
touches neither the optimizer nor the scheduler, and puts back the RNG states (torch CPU and CUDA,
Python, NumPy); every module's ``training`` flag, every parameter's ``requires_grad`` and ``.grad``
and the attention implementation are checked after each call and a difference raises. Under
distributed training only the main process (rank 0) analyses and writes; the other ranks do
nothing and wait at the next collective as they would for a checkpoint save. The model must be whole
on rank 0 (DDP, not FSDP or DeepSpeed ZeRO-3, which shard the weights).
"""

from __future__ import annotations

import io
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import TrainerCallback

from ..errors import InputError, LavError
from ..eval import log
from ..eval.records import safe_id
from ..options import AnalysisOptions, options_from
from .overlays import labelled
from .probe import ProbeArg, load_probe, scalars, score
from .reporters import Reporter, TensorBoardReporter, close_all, reporters_for, run_name, tensorboard_dir

#: Sub-folder of ``output_dir`` where each analysed step is saved as ``step-N``.
RECORDS_DIR = "lav"


def _say(msg: str) -> None:
    print(f"lav: {msg}", file=sys.stderr, flush=True)


@contextmanager
def rng_kept():
    """Put back the torch (CPU and initialised CUDA), Python and NumPy RNG states on exit."""
    cpu = torch.get_rng_state()
    cuda = (
        torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    )
    py = random.getstate()
    np_state = np.random.get_state()
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        random.setstate(py)
        np.random.set_state(np_state)


def _state_of(model: torch.nn.Module) -> dict[str, Any]:
    """What an analysis must leave as it found: flags, gradients, the attention implementation."""
    config = getattr(model, "config", None)
    return {
        "training": [(name, m.training) for name, m in model.named_modules()],
        "requires_grad": [(name, p.requires_grad) for name, p in model.named_parameters()],
        "grad": [(name, None if p.grad is None else id(p.grad)) for name, p in model.named_parameters()],
        "attn_implementation": getattr(config, "_attn_implementation", None),
    }


def check_untouched(before: dict[str, Any], model: torch.nn.Module) -> None:
    """Raise `LavError` naming the first thing that differs from ``before`` (`_state_of`)."""
    after = _state_of(model)
    for key, value in before.items():
        if after[key] != value:
            if isinstance(value, list):
                diff = next((a, b) for a, b in zip(value, after[key], strict=False) if a != b)
                raise LavError(
                    f"the probe analysis changed the model's {key} ({diff[0]} -> {diff[1]}); please report"
                )
            raise LavError(
                f"the probe analysis changed the model's {key} ({value} -> {after[key]}); please report"
            )


class LavCallback(TrainerCallback):
    """Analyse ``probe`` every ``every_n_steps`` steps and on evaluate; log and save what it shows.

    ``processor``: the model's processor (the one its chat template and image sizes come from).
    ``probe``: a list of ``{"image", "instruction", "bbox"}`` (``bbox`` in original-image pixels,
    optionally ``"id"``) or a path in any format ``lav eval`` reads. ``focus_layers``: decoder layers
    whose pointing game and mass in box are logged (default: all); ``maps``: map methods to run
    (default ``("focus",)``: the decoder's focus only; add ``"edge"`` for the vision tower's).
    ``compare_base``: also analyse with the LoRA adapter disabled, once, and log that beside.
    ``images``: how many probe samples get an overlay logged each time. ``save``: write
    ``output_dir/lav/step-N/``. ``options``: the analysis options as one `lav.AnalysisOptions`
    instead of the keywords (checked here, when the callback is built).
    """

    def __init__(
        self,
        processor,
        probe: ProbeArg,
        every_n_steps: int = 200,
        *,
        focus_layers: int | Sequence[int] | str = "all",
        edge_layers: int | Sequence[int] | str = (-2, -1),
        maps: Sequence[str] | None = ("focus",),
        batch_size: int = 8,
        compare_base: bool = True,
        max_new_tokens: int = 32,
        images: int = 4,
        save: bool = True,
        options: AnalysisOptions | None = None,
    ):
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise InputError(f"every_n_steps must be a positive integer, got {every_n_steps!r}")
        self.processor = processor
        self.samples = load_probe(probe)
        _check_images(self.samples)
        self.every_n_steps = every_n_steps
        self.options = options_from(
            options,
            {
                "focus_layers": focus_layers,
                "edge_layers": edge_layers,
                "maps": maps,
                "compare_base": compare_base,
                "max_new_tokens": max_new_tokens,
            },
            defaults={"focus_layers": "all", "maps": ("focus",), "compare_base": True, "max_new_tokens": 32},
        )
        self.batch_size = batch_size
        self.compare_base = self.options.compare_base
        self.images = images
        self.save = save
        self.reporters: list[Reporter] | None = None
        #: The TensorBoard run folder's name (`reporters.run_name`), new for each ``train()``.
        self._run: str | None = None
        #: Where this run's TensorBoard events went (None: not to TensorBoard).
        self.log_dir: str | None = None
        self.history: list[dict[str, Any]] = []
        self._base = None  # the base model's results, from the first call
        self._viz = None
        self._last_step: int | None = None
        self._step_started: float | None = None
        self._step_seconds: list[float] = []
        self._warned: set[str] = set()
        self._adapter = False  # whether the analysed model has a LoRA adapter (labels its overlays)

    # --- the trainer's events ----------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        _check_whole_model(args)
        # After the trainer's own TensorBoardCallback names its run (callbacks run in order, the
        # trainer's first): the same name when both fall in the same second.
        self._run = run_name()

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._step_started is not None:
            self._step_seconds.append(time.perf_counter() - self._step_started)
            self._step_started = None
        if state.global_step % self.every_n_steps == 0:
            self.run(args, state, kwargs["model"])

    def on_evaluate(self, args, state, control, **kwargs):
        self.run(args, state, kwargs["model"])

    def on_train_end(self, args, state, control, **kwargs):
        if self.reporters is not None:
            close_all(self.reporters)
            self.reporters = None
        self._run = None

    # --- one analysis ------------------------------------------------------------------------
    def run(self, args, state, model: torch.nn.Module) -> dict[str, float] | None:
        """Analyse the probe at ``state.global_step`` (once per step; rank 0 only): the scalars logged."""
        step = int(state.global_step)
        if not state.is_world_process_zero or step == self._last_step:
            return None
        self._last_step = step
        viz = self._visualizer(model, args)
        self._adapter = bool(viz.has_adapter)
        compare = self.compare_base and viz.has_adapter and self._base is None
        if self.compare_base and not viz.has_adapter:
            self._warn("compare_base: the model has no LoRA adapter (not a PeftModel); logging it alone")
        items = [{"image": s.image, "instruction": s.instruction} for s in self.samples]
        t0 = time.perf_counter()
        before = _state_of(model)
        results = None
        with rng_kept():
            try:
                results = viz.analyze_many(
                    items, self.batch_size, options=self.options.replace(compare_base=compare)
                )
            except LavError as exc:
                # Hours of training are worth more than one probe: say why and go on.
                _say(f"warning: step {step}: the probe analysis failed, training goes on: {exc}")
            finally:
                check_untouched(before, model)
        if results is None:
            return None
        seconds = time.perf_counter() - t0
        if compare:
            self._base = [r.base for r in results]
        if self._base is not None:
            for res, base in zip(results, self._base, strict=True):
                res.base = base
        records, summary = score(self.samples, results)
        summary.update(
            {"step": step, "model": viz.model_name, "adapter": viz.adapter_name, "seconds": seconds}
        )
        # The step's report.html is titled by its dataset: name the step there.
        summary["dataset"] = f"LavCallback probe at training step {step}"
        values = scalars(summary)
        with tempfile.TemporaryDirectory(prefix="lav-thumbs-") as tmp:
            if self.save:
                thumbs = self._save(
                    Path(args.output_dir) / RECORDS_DIR / f"step-{step}", results, records, summary
                )
            else:
                thumbs = self._thumbnails(Path(tmp), results[: self.images], records, step)
        self._report(args, values, thumbs, step)
        self.history.append({"step": step, **values})
        if len(self.history) == 1:
            self._say_cost(seconds)
        return values

    def _visualizer(self, model, args):
        if self._viz is None or self._viz.model is not model:
            from ..analysis import Visualizer

            config = getattr(model, "config", None)
            name = str(getattr(config, "_name_or_path", "") or getattr(args, "run_name", None) or "model")
            self._viz = Visualizer(model, self.processor, model_name=name)
        return self._viz

    def _save(self, folder: Path, results, records, summary) -> dict[str, Image.Image]:
        """The step as a ``lav eval`` folder; the thumbnails (adapter | base) of the first samples."""
        from ..eval.engine import write_outputs
        from ..eval.report import thumbnail_png
        from ..livefolder import OutputFolder

        thumbs: dict[str, Image.Image] = {}
        # The output-folder rule of `lav eval`: lav writes only where its manifest says it wrote.
        with OutputFolder(folder) as out:
            for n, (res, rec) in enumerate(zip(results, records, strict=True)):
                res.save(out.nested(f"samples/{safe_id(rec['id'])}"))
                png = thumbnail_png(res, rec)
                out.write_bytes(f"thumbs/{safe_id(rec['id'])}.png", png)
                if n < self.images:
                    with Image.open(io.BytesIO(png)) as img:
                        thumbs[f"lav/overlay/{rec['id']}"] = labelled(
                            img.convert("RGB"), res, int(summary["step"]), self._adapter
                        )
            out.write_text(log.SAMPLES_FILE, "".join(log.dumps(r) + "\n" for r in records))
            summary = {"dataset": "probe", "format": "probe", "notes": [], **summary}
            write_outputs(out, records, summary)
        return thumbs

    def _thumbnails(self, folder: Path, results, records, step: int) -> dict[str, Image.Image]:
        """``folder/thumbs/<id>.png`` for each result (adapter | base, target box, clicks); the first
        ``images`` of them as images to log, labelled (`overlays.labelled`)."""
        from ..eval.report import write_thumbnail

        thumbs: dict[str, Image.Image] = {}
        for n, (res, rec) in enumerate(zip(results, records, strict=False)):
            path = folder / "thumbs" / f"{safe_id(rec['id'])}.png"
            write_thumbnail(res, rec, path)
            if n < self.images:
                with Image.open(path) as img:
                    thumbs[f"lav/overlay/{rec['id']}"] = labelled(
                        img.convert("RGB"), res, step, self._adapter
                    )
        return thumbs

    def _report(self, args, values, thumbs, step: int) -> None:
        if self.reporters is None:
            if self._run is None:  # called outside a Trainer's train(): a run of its own
                self._run = run_name()
            saved = str(Path(args.output_dir) / RECORDS_DIR) if self.save else None
            self.reporters = reporters_for(args, self._warn, self._run, saved)
            if any(isinstance(r, TensorBoardReporter) for r in self.reporters):
                self.log_dir = tensorboard_dir(args, self._run)
        for r in self.reporters:
            r.log(values, thumbs, step)

    def _say_cost(self, seconds: float) -> None:
        n = len(self.samples)
        if self._base is not None:
            n = f"{n} (and, this once, with the adapter off: later calls reuse it)"
        steps = self._step_seconds
        if steps:
            mean = sum(steps) / len(steps)
            _say(
                f"LavCallback: analysing {n} probe samples took {seconds:.2f}s, about "
                f"{seconds / mean:.1f} training steps (mean step {mean:.3f}s); every {self.every_n_steps} "
                f"steps that is {100 * seconds / (mean * self.every_n_steps):.1f}% more time"
            )
        else:
            _say(f"LavCallback: analysing {n} probe samples took {seconds:.2f}s")

    def _warn(self, msg: str) -> None:
        if msg not in self._warned:
            self._warned.add(msg)
            _say(f"warning: {msg}")


def _check_images(samples) -> None:
    """Every probe image opens (before training starts, not hours into it)."""
    from ..inputs import load_image

    for s in samples:
        try:
            load_image(s.image)
        except LavError as exc:
            raise InputError(f"probe sample {s.id!r}: {exc}") from exc


def _check_whole_model(args) -> None:
    fsdp = getattr(args, "fsdp", None)
    zero3 = False
    if getattr(args, "deepspeed", None):
        try:
            from transformers.integrations import is_deepspeed_zero3_enabled

            zero3 = bool(is_deepspeed_zero3_enabled())
        except ImportError:
            zero3 = False
    if fsdp or zero3:
        raise InputError(
            "LavCallback analyses the whole model on rank 0, but FSDP / DeepSpeed ZeRO-3 shard its "
            "weights across ranks; use DDP, or run `lav evolve` on the saved checkpoints instead"
        )
