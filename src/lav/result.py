"""`Result`: plain data of one analysis, saved as JSON + NPZ + PNG + HTML (shared/DESIGN.md contract)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .coords import Click
from .errors import LavError
from .maps import EdgeMaps, FocusMaps

#: Every file `Result.save` may write; a folder holding only these may be overwritten.
OUTPUT_FILES = frozenset(
    {
        "result.json",
        "maps.npz",
        "overlay.png",
        "report.html",
        "overlay_base.png",
        "overlay_diff.png",
    }
)


@dataclass
class Result:
    """One screenshot, one instruction, one answer, and where the model looked.

    Maps: ``edge`` (grid_h, grid_w) and ``focus`` (grid_h/merge, grid_w/merge), float32 in [0,1].
    ``click`` is in original-image pixels, or None with ``click_error`` saying why.
    ``base`` holds the same analysis with the LoRA adapter disabled, when asked for.
    """

    model: str
    adapter: str | None
    instruction: str
    response: str
    image: Image.Image = field(repr=False)
    resized_size: tuple[int, int]
    grid: tuple[int, int, int]
    merge: int
    patch: int
    family: str
    click: Click | None
    click_error: str | None
    convention: str | None
    edge_maps: EdgeMaps = field(repr=False)
    focus_maps: FocusMaps = field(repr=False)
    focus_tokens: str
    answer_tokens: list[str]
    windowed_blocks: tuple[int, ...]
    backend: str
    method: list[str]
    timings: dict[str, float]
    forced: bool
    adapter_enabled: bool = True
    base: Result | None = field(default=None, repr=False)

    # --- the maps, in the user's words -------------------------------------------------------
    @property
    def edge(self) -> np.ndarray:
        return self.edge_maps.edge

    @property
    def focus(self) -> np.ndarray:
        return self.focus_maps.focus

    @property
    def focus_x(self) -> np.ndarray | None:
        return self.focus_maps.x

    @property
    def focus_y(self) -> np.ndarray | None:
        return self.focus_maps.y

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the original image."""
        return self.image.size

    @property
    def edge_diff(self) -> np.ndarray | None:
        """Adapter minus base edge map, in [-1, 1] (None without a base run)."""
        return None if self.base is None else (self.edge - self.base.edge).astype(np.float32)

    @property
    def focus_diff(self) -> np.ndarray | None:
        return None if self.base is None else (self.focus - self.base.focus).astype(np.float32)

    # --- plain data ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON-friendly summary written to ``result.json``."""
        t, h, w = self.grid
        out: dict[str, Any] = {
            "model": self.model,
            "adapter": self.adapter,
            "adapter_enabled": self.adapter_enabled,
            "family": self.family,
            "instruction": self.instruction,
            "response": self.response,
            "forced_response": self.forced,
            "image_size": list(self.image_size),
            "resized_size": list(self.resized_size),
            "grid": {"t": t, "h": h, "w": w, "merge": self.merge, "patch": self.patch},
            "click": None if self.click is None else self.click.to_dict(),
            "click_error": self.click_error,
            "coords_convention": self.convention,
            "edge_layers": list(self.edge_maps.blocks),
            "windowed_blocks": list(self.windowed_blocks),
            "focus_layers": list(self.focus_maps.decoder_layers),
            "focus_tokens": self.focus_tokens,
            "focus_rows": list(self.focus_maps.rows),
            "answer_tokens": self.answer_tokens,
            "image_share": self.focus_maps.image_share.tolist(),
            "attention_backend": self.backend,
            "received_method": self.method,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }
        if self.base is not None:
            out["base"] = self.base.to_dict()
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything written to ``maps.npz``; the base run's arrays are prefixed ``base_``."""
        e, f = self.edge_maps, self.focus_maps
        out = {
            "edge": e.edge,
            "edge_raw": e.raw,
            "edge_layers": e.layers,
            "focus": f.focus,
            "focus_raw": f.raw,
            "focus_layers": f.layers,
            "image_share": f.image_share,
        }
        if f.x is not None:
            out["focus_x"] = f.x
        if f.y is not None:
            out["focus_y"] = f.y
        if self.base is not None:
            out.update({f"base_{k}": v for k, v in self.base.arrays().items()})
            out["edge_diff"] = self.edge_diff
            out["focus_diff"] = self.focus_diff
        return out

    # --- views ---------------------------------------------------------------------------------
    def overlay(self, edge: bool = True, focus: bool = True, click: bool = True) -> Image.Image:
        """The screenshot with the edge map (cyan), decision focus (red/yellow) and the click."""
        from .render import overlay

        # The click as found (not clipped): the renderer marks one outside the image as hollow.
        point = (self.click.x, self.click.y) if click and self.click is not None else None
        return overlay(
            self.image, edge=self.edge if edge else None, focus=self.focus if focus else None, click=point
        )

    def report_html(self) -> str:
        """One self-contained HTML page (no network) with every panel."""
        from .report import build_report

        return build_report(self)

    def _repr_html_(self) -> str:
        from .report import notebook_html

        return notebook_html(self)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write result.json, maps.npz, overlay.png, report.html (and the base/difference views).

        The files land complete or not at all: they are written to a temporary folder beside
        ``directory`` and moved into place at the end.
        """
        from .report import write_outputs

        target = Path(directory)
        if target.exists():
            if not target.is_dir():
                raise LavError(f"output path {target} is a file; give a folder")
            foreign = sorted(p.name for p in target.iterdir() if p.name not in OUTPUT_FILES)
            if foreign:
                raise LavError(
                    f"output folder {target} holds other files ({', '.join(foreign[:3])}...); "
                    "give an empty or new folder, or one lav wrote before"
                )
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            write_outputs(self, tmp)
            (tmp / "result.json").write_text(json.dumps(self.to_dict(), indent=2))
            np.savez_compressed(tmp / "maps.npz", **self.arrays())
            old = None
            if target.exists():
                old = target.with_name(f".{target.name}.old-{os.getpid()}")
                target.rename(old)
            tmp.rename(target)
            if old is not None:
                shutil.rmtree(old)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target
