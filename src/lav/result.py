"""`Result`: the plain, torch-free record of one analysis, and the files it is saved as.

A `Result` holds the answer, the click and every map by name (`Map`). It saves to a folder as
``result.json`` (schema-versioned; the keys are the attribute names), ``maps.npz`` (every array,
bit-exact) and ``image.png`` (the screenshot, lossless), and `Result.load` reads that folder back
into an equal `Result`. `Result.save` also writes the pictures (``overlay.png``, ``report.html``),
drawn by `lav.render.views` from the record's plain data: the renderers read a `Result` without
importing this module (only for type checking), and this module imports them only when a picture
is asked for. Nothing here imports torch or transformers: the viewer and the evaluation report read
results without them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .coords.convert import Click
from .errors import LavError

#: Version of the ``result.json`` layout. 3 added ``answer_span``, ``refused`` and the click's
#: ``candidates``; `Result.load` reads versions 2 and 3 (a version-2 record has none of them).
SCHEMA_VERSION = 3
READABLE_VERSIONS = (2, 3)

#: Map grids: ``patch`` is the vision tower's patch grid (grid_h, grid_w); ``merged`` is the decoder's
#: image-token grid (grid_h/merge, grid_w/merge).
GRIDS = ("patch", "merged")
#: How a map is drawn: ``edge`` in cyan, ``focus`` in red/yellow (shared/DESIGN.md colours).
STYLES = ("edge", "focus")

RECORD_FILES = ("result.json", "maps.npz", "image.png")


def _arrays_equal(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and np.array_equal(a[k], b[k], equal_nan=True)
        for k in a
    )


@dataclass(frozen=True, eq=False)
class Map:
    """One named map of one analysis.

    ``values``: (rows, cols) float32 in [0,1] on ``grid`` (``"patch"`` or ``"merged"``), drawn in
    ``style`` (``"edge"`` cyan or ``"focus"`` red/yellow). ``layers``: the vision blocks or decoder
    layers it averages. ``arrays``: more arrays saved in maps.npz under their own keys (raw values,
    per-layer maps, ...); ``info``: JSON metadata (what the rows were, which blocks were windowed...).
    """

    name: str
    values: np.ndarray
    grid: str
    style: str
    title: str
    layers: tuple[int, ...] = ()
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.grid not in GRIDS:
            raise ValueError(f"map {self.name!r}: grid must be one of {GRIDS}, got {self.grid!r}")
        if self.style not in STYLES:
            raise ValueError(f"map {self.name!r}: style must be one of {STYLES}, got {self.style!r}")
        if np.asarray(self.values).ndim != 2:
            raise ValueError(f"map {self.name!r}: values must be 2-D, got shape {np.shape(self.values)}")
        if self.name in self.arrays:
            raise ValueError(f"map {self.name!r}: an extra array may not reuse the map's own name")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Map):
            return NotImplemented
        return (
            (self.name, self.grid, self.style, self.title, tuple(self.layers), self.info)
            == (other.name, other.grid, other.style, other.title, tuple(other.layers), other.info)
            and _arrays_equal({"v": self.values}, {"v": other.values})
            and _arrays_equal(self.arrays, other.arrays)
        )

    __hash__ = None  # type: ignore[assignment]

    def npz(self) -> dict[str, np.ndarray]:
        """The arrays this map puts in maps.npz: its values under its name, then its extras."""
        return {self.name: self.values, **self.arrays}

    def describe(self) -> dict[str, Any]:
        """The map's entry in result.json (arrays are named, stored in maps.npz)."""
        return {
            "title": self.title,
            "grid": self.grid,
            "style": self.style,
            "shape": list(self.values.shape),
            "layers": [int(i) for i in self.layers],
            "arrays": sorted(self.arrays),
            "info": self.info,
        }


@dataclass(eq=True)
class Result:
    """One screenshot, one instruction, one answer, and where the model looked.

    Maps by name in ``maps`` (`Map`); ``edge`` (grid_h, grid_w) and ``focus`` (grid_h/merge,
    grid_w/merge) float32 in [0,1] are the first two. ``click`` is in original-image pixels, or None
    with ``click_error`` saying why; ``refused`` is True when the answer is a refusal (a phrase or a
    sentinel such as [-1, -1]) and ``answer_span`` the [start, end) characters of ``response`` read
    as the final answer (after any reasoning; None when none was found). ``base`` holds the same analysis with the LoRA adapter disabled,
    when asked for. The attribute names are the keys of ``result.json``.
    """

    model: str
    adapter: str | None
    adapter_enabled: bool
    family: str
    instruction: str
    response: str
    forced_response: bool
    image: Image.Image = field(repr=False)
    resized_size: tuple[int, int]
    grid: dict[str, int]
    click: Click | None
    click_error: str | None
    coords_convention: str | None
    answer_tokens: list[str]
    attention_backend: str
    received_method: list[str]
    timings: dict[str, float]
    maps: dict[str, Map] = field(repr=False)
    base: Result | None = field(default=None, repr=False)
    answer_span: tuple[int, int] | None = None
    refused: bool = False
    #: A forced answer's agreement with transformers' own greedy choice (`lav.agreement`): null
    #: for a generated answer.
    agreement: dict[str, Any] | None = None
    #: Deletion / insertion curves of the maps and the zoom test (`lav.faithful`), when asked for.
    faithfulness: dict[str, Any] | None = None
    zoom: dict[str, Any] | None = None

    # --- the maps, in the user's words -------------------------------------------------------
    def map(self, name: str) -> Map:
        """The map called ``name``; a clear error naming the ones there are."""
        if name not in self.maps:
            raise KeyError(f"this result has no map {name!r}; it has {', '.join(self.maps) or 'none'}")
        return self.maps[name]

    @property
    def edge(self) -> np.ndarray:
        return self.map("edge").values

    @property
    def focus(self) -> np.ndarray:
        return self.map("focus").values

    @property
    def focus_x(self) -> np.ndarray | None:
        return self.map("focus").arrays.get("focus_x")

    @property
    def focus_y(self) -> np.ndarray | None:
        return self.map("focus").arrays.get("focus_y")

    @property
    def edge_layers(self) -> list[int]:
        return list(self.map("edge").layers)

    @property
    def focus_layers(self) -> list[int]:
        return list(self.map("focus").layers)

    @property
    def windowed_blocks(self) -> list[int]:
        return list(self.map("edge").info.get("windowed_blocks", []))

    @property
    def focus_tokens(self) -> str:
        return self.map("focus").info["tokens"]

    @property
    def focus_rows(self) -> list[int]:
        return list(self.map("focus").info["rows"])

    @property
    def image_share(self) -> np.ndarray:
        return self.map("focus").arrays["image_share"]

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the original image."""
        return self.image.size

    @property
    def merge(self) -> int:
        return int(self.grid["merge"])

    @property
    def patch(self) -> int:
        return int(self.grid["patch"])

    def diff(self, name: str) -> np.ndarray | None:
        """Adapter minus base for map ``name``, in [-1, 1] (None without a base run or that map)."""
        if self.base is None or name not in self.maps or name not in self.base.maps:
            return None
        return (self.maps[name].values - self.base.maps[name].values).astype(np.float32)

    @property
    def edge_diff(self) -> np.ndarray | None:
        return self.diff("edge")

    @property
    def focus_diff(self) -> np.ndarray | None:
        return self.diff("focus")

    # --- plain data ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON written to ``result.json``: every field but the image and the arrays."""
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "image" or (f.name in _WHEN_SET and value is None):
                continue
            if f.name == "click":
                value = None if value is None else value.to_dict()
            elif f.name == "maps":
                value = {name: m.describe() for name, m in value.items()}
            elif f.name == "base":
                value = None if value is None else value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        out["image_size"] = list(self.image_size)
        # Derived for readers of the JSON alone (not read back: the maps' entries are the truth).
        if "edge" in self.maps:
            out["edge_layers"] = self.edge_layers
            out["windowed_blocks"] = self.windowed_blocks
        if "focus" in self.maps:
            out["focus_layers"] = self.focus_layers
            out["focus_tokens"] = self.focus_tokens
            out["focus_rows"] = self.focus_rows
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything written to ``maps.npz``; the base run's arrays are prefixed ``base_``."""
        out: dict[str, np.ndarray] = {}
        for m in self.maps.values():
            for key, value in m.npz().items():
                if key in out:
                    raise LavError(f"two maps write the array {key!r}; give each map its own array names")
                out[key] = value
        if self.base is not None:
            out.update({f"base_{k}": v for k, v in self.base.arrays().items()})
            for name in self.maps:
                d = self.diff(name)
                if d is not None:
                    out[f"{name}_diff"] = d
        return out

    # --- files ---------------------------------------------------------------------------------
    def write_record(self, folder: str | os.PathLike) -> None:
        """Write result.json, maps.npz and image.png into an existing ``folder`` (no pictures)."""
        folder = Path(folder)
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False, default=_json_default)
        (folder / "result.json").write_text(text + "\n", encoding="utf-8")
        np.savez_compressed(folder / "maps.npz", **self.arrays())
        self.image.save(folder / "image.png", format="PNG")

    @classmethod
    def load(cls, folder: str | os.PathLike, max_pixels: int | None = None) -> Result:
        """Read a folder written by `Result.save` back into an equal `Result` (no torch needed).

        Everything is checked on load (`lav.record`): the record's fields and types, each array's
        header before its data, the maps' shapes against the grid, and ``image.png`` against
        ``max_pixels`` (default: `lav run`'s limit) before it is decoded. A damaged or forged folder
        raises one `LavError` naming the part.
        """
        from . import record
        from .inputs import DEFAULT_MAX_PIXELS

        folder = Path(folder)
        for name in RECORD_FILES:
            if not (folder / name).is_file():
                raise LavError(
                    f"{folder} is not a lav result folder: {name} is missing "
                    "(it is written by lav run --out / Result.save, lav 0.2 or newer)"
                )
        data = record.read_json(folder)
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS:
            readable = " and ".join(str(v) for v in READABLE_VERSIONS)
            raise LavError(
                f"{folder}/result.json has schema_version {version!r}; this lav reads versions "
                f"{readable}: run the analysis again with this lav"
            )
        record.check_record(data, f"{folder}/result.json")
        arrays = record.read_arrays(folder, data)
        image = record.read_image(folder, data, DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels)
        try:
            return cls._from(data, arrays, "", image)
        except (KeyError, TypeError, ValueError) as exc:
            raise LavError(f"{folder}/result.json is damaged ({type(exc).__name__}: {exc})") from exc

    @classmethod
    def _from(cls, data: dict[str, Any], arrays: dict[str, np.ndarray], prefix: str, image) -> Result:
        maps = {}
        for name, d in data["maps"].items():
            maps[name] = Map(
                name=name,
                values=arrays[prefix + name],
                grid=d["grid"],
                style=d["style"],
                title=d["title"],
                layers=tuple(d["layers"]),
                arrays={k: arrays[prefix + k] for k in d["arrays"]},
                info=d["info"],
            )
        click = data["click"]
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in ("image", "maps", "base", "click"):
                continue
            if f.name in _OPTIONAL and f.name not in data:
                continue  # a version-2 record, or a check not asked for: the field's default
            kwargs[f.name] = data[f.name]
        kwargs["resized_size"] = tuple(kwargs["resized_size"])
        if kwargs.get("answer_span") is not None:
            kwargs["answer_span"] = tuple(kwargs["answer_span"])
        base = None
        if data.get("base") is not None:
            base = cls._from(data["base"], arrays, prefix + "base_", image)
        return cls(
            **kwargs,
            image=image,
            maps=maps,
            base=base,
            click=None if click is None else _click(click),
        )

    # --- views (drawn by lav.render.views, imported on first use) -----------------------------
    def overlay(self, edge: bool = True, focus: bool = True, click: bool = True) -> Image.Image:
        """The screenshot with the edge map (cyan), decision focus (red/yellow) and the click."""
        from .render import views

        return views.overlay_image(self, edge=edge, focus=focus, click=click)

    def report_html(self) -> str:
        """One self-contained HTML page (no network) with every panel."""
        from .render import views

        return views.result_page(self)

    def _repr_html_(self) -> str:
        from .render import views

        return views.notebook_html(self)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write result.json, maps.npz, image.png (the record `load` reads back) and the pictures
        (overlay.png, report.html and the base views) into ``directory``.

        The folder is written by `lav.outdir.write_output_folder`: complete or not at all, and never
        over files lav did not write.
        """
        from .outdir import write_output_folder
        from .render import views

        def write(folder: Path) -> None:
            self.write_record(folder)
            views.write_pictures(self, folder)

        return write_output_folder(directory, write)


#: Result fields that version-2 records lack.
_ADDED_IN_3 = ("answer_span", "refused")
#: Fields a record may lack (its default then): those version 3 added, ``agreement``, added
#: within version 3 as an optional field that older lav ignores, and the checks' results
#: (``faithfulness``, ``zoom``), written only when their check ran.
_OPTIONAL = (*_ADDED_IN_3, "agreement", "faithfulness", "zoom")
#: Of those, the fields written only when set (a check not asked for leaves no trace).
_WHEN_SET = ("faithfulness", "zoom")


def _click(d: dict[str, Any]) -> Click:
    return Click(
        x=d["x"],
        y=d["y"],
        raw=tuple(d["raw"]),
        kind=d["kind"],
        convention=d["convention"],
        box=None if d["box"] is None else tuple(d["box"]),
        in_range=d["in_range"],
        inside_image=d["inside_image"],
        warning=d["warning"],
        candidates=tuple((float(x), float(y)) for x, y in d.get("candidates", [(d["x"], d["y"])])),
        # Added without a schema bump: a record written before them reads as not scored.
        confidence=d.get("confidence"),
        digits=tuple(d.get("digits", ())),
        alternatives=tuple(d.get("alternatives", ())),
    )


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays in a map's info: .tolist() gives plain JSON numbers.
    if hasattr(obj, "tolist"):
        value = obj.tolist()
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("a non-finite number cannot be written to result.json")
        return value
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
