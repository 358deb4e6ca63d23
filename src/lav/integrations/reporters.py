"""Where `LavCallback` sends its scalars and overlays: the reporters the trainer itself reports to.

A `TrainerCallback` is not handed the trainer nor its other callbacks, so the callback cannot reach
the writer of transformers' ``TensorBoardCallback``; it writes beside it instead:

- TensorBoard: a ``SummaryWriter`` of its own in the trainer's TensorBoard folder (``logging_dir``,
  else ``$TENSORBOARD_LOGGING_DIR``, else ``output_dir/runs``), under a ``lav`` sub-folder, which
  TensorBoard shows as the run ``lav`` beside the trainer's own;
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


def tensorboard_dir(args: Any) -> str:
    """The folder lav's TensorBoard events go to (a ``lav`` run beside the trainer's)."""
    root = getattr(args, "logging_dir", None) or os.environ.get("TENSORBOARD_LOGGING_DIR")
    if root is None:
        root = os.path.join(args.output_dir, "runs")
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


def reporters_for(args: Any, warn) -> list[Reporter]:
    """The reporters ``args.report_to`` asks for that can be used here; ``warn`` says why one cannot."""
    out: list[Reporter] = []
    report_to = getattr(args, "report_to", None)
    if _wanted(report_to, "tensorboard"):
        try:
            out.append(TensorBoardReporter(tensorboard_dir(args)))
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
