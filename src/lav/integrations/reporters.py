"""Where `LavCallback` sends its scalars and overlays: the reporters the trainer itself reports to.

A `TrainerCallback` is not handed the trainer nor its other callbacks, so the callback cannot reach
the writer of transformers' ``TensorBoardCallback``; it writes beside it instead:

- TensorBoard: a ``SummaryWriter`` of its own in a ``lav`` sub-folder of the trainer's TensorBoard
  folder for this run, which TensorBoard shows as a run beside the trainer's own (`tensorboard_dir`):
  ``logging_dir`` where the transformers release has it (4.x; its default is already one folder per
  run), else ``$TENSORBOARD_LOGGING_DIR``, else ``output_dir/runs/<date>_<host>/`` named as the
  trainer names its run (transformers 5 has no ``logging_dir``), so a second run into the same
  ``output_dir`` gets a folder of its own instead of appending to the first one's steps;
- Weights & Biases: the run the trainer's ``WandbCallback`` opened (``wandb.run``), logged with
  ``train/global_step`` as transformers does, so lav's charts share the trainer's x axis. lav never
  starts a run nor touches the network itself.

Each reporter is chosen by ``report_to`` as the trainer chooses its own (``"all"`` means every one
that is installed).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from PIL import Image


class Reporter(Protocol):
    def log(self, scalars: Mapping[str, float], images: Mapping[str, Image.Image], step: int) -> None: ...

    def close(self) -> None: ...


def _wanted(report_to: Any, name: str) -> bool:
    if report_to is None:
        return False
    names = [report_to] if isinstance(report_to, str) else list(report_to)
    return name in names or "all" in names


def run_name() -> str:
    """A run folder's name as the trainer's ``TensorBoardCallback`` names it without a logging folder
    (``runs/<Mon><DD>_<HH>-<MM>-<SS>_<host>``: PyTorch's ``SummaryWriter`` default)."""
    import socket
    from datetime import datetime

    return os.path.join("runs", datetime.now().strftime("%b%d_%H-%M-%S") + "_" + socket.gethostname())


def tensorboard_dir(args: Any, run: str | None = None) -> str:
    """The folder lav's TensorBoard events go to: a ``lav`` run inside the trainer's folder for this
    run. ``logging_dir`` (transformers 4.x, default ``output_dir/runs/<date>_<host>``), else
    ``$TENSORBOARD_LOGGING_DIR`` (where transformers 5 writes too, every run alike), else
    ``output_dir/<run>`` with ``run`` from `run_name` (taken when training begins)."""
    root = getattr(args, "logging_dir", None) or os.environ.get("TENSORBOARD_LOGGING_DIR")
    if root is None:
        root = os.path.join(args.output_dir, run or run_name())
    return os.path.join(os.path.expanduser(root), "lav")


class TensorBoardReporter:
    """Scalars and overlay images into ``log_dir`` with torch's ``SummaryWriter``."""

    def __init__(self, log_dir: str):
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = log_dir
        self.writer = SummaryWriter(log_dir=log_dir)

    def log(self, scalars: Mapping[str, float], images: Mapping[str, Image.Image], step: int) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)
        for tag, image in images.items():
            self.writer.add_image(tag, np.asarray(image.convert("RGB")), step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbReporter:
    """Scalars and ``wandb.Image`` overlays into the trainer's open W&B run."""

    def __init__(self, wandb: Any):
        self.wandb = wandb

    def log(self, scalars: Mapping[str, float], images: Mapping[str, Image.Image], step: int) -> None:
        run = self.wandb.run
        if run is None:  # the trainer's run was finished under us: nothing to log into
            return
        data: dict[str, Any] = dict(scalars)
        data.update({tag: self.wandb.Image(image) for tag, image in images.items()})
        data["train/global_step"] = step
        run.log(data)

    def close(self) -> None:
        pass


#: What is said once when ``report_to`` names no reporter lav writes to.
NO_REPORTER = (
    "report_to names neither tensorboard nor wandb (transformers' default is 'none'), so the probe's "
    "scalars and overlays reach no dashboard{saved}; pass report_to=['tensorboard'] to see them there"
)


def reporters_for(args: Any, warn, run: str | None = None, saved: str | None = None) -> list[Reporter]:
    """The reporters ``args.report_to`` asks for that can be used here; ``warn`` says why one cannot,
    and says it when none is asked for (``saved``: where the steps are written instead, if anywhere).
    ``run``: the TensorBoard run folder's name (`tensorboard_dir`)."""
    out: list[Reporter] = []
    report_to = getattr(args, "report_to", None)
    if not (_wanted(report_to, "tensorboard") or _wanted(report_to, "wandb")):
        warn(NO_REPORTER.format(saved=f" (each step is saved in {saved})" if saved else ""))
    if _wanted(report_to, "tensorboard"):
        try:
            out.append(TensorBoardReporter(tensorboard_dir(args, run)))
        except ImportError:
            if report_to != "all" and "all" not in (report_to or ()):
                warn("report_to has tensorboard but tensorboard is not installed: pip install 'lav[train]'")
    if _wanted(report_to, "wandb"):
        wandb = _wandb()
        if wandb is not None and getattr(wandb, "run", None) is not None:
            out.append(WandbReporter(wandb))
        elif wandb is not None:
            warn("report_to has wandb but no W&B run is open (the trainer opens it on train begin)")
    return out


def _wandb() -> Any:
    """The ``wandb`` module if it is installed (imported only then: it is heavy)."""
    if "wandb" in sys.modules:
        return sys.modules["wandb"]
    from importlib.util import find_spec

    if find_spec("wandb") is None:
        return None
    import wandb

    return wandb


def close_all(reporters: Sequence[Reporter]) -> None:
    for r in reporters:
        r.close()
