"""Reading a saved result folder within bounds: what `Result.load` checks before it builds anything.

A result folder may come from anywhere (a colleague's zip, a browsed ``--results`` root), so every
file is read as an untrusted one, and the whole record is checked once, here, rather than failing
later inside an overlay, a report or a save:

- ``result.json``: a regular file (`lav.safeopen`), JSON within `lav.jsonsafe`'s bounds, and every
  field of the right type (`check_record`), the base run's too;
- ``maps.npz``: every array's header is read before its data, and an array is refused when its
  dtype is not a plain number or its size exceeds what the record's grid can explain, or what the
  file's compressed bytes can hold (deflate packs at most ~1032 bytes into one), so a header that
  claims 149 GiB is refused without allocating it; then each map's shape must match its grid;
- ``image.png``: the ``--max-pixels`` rule of `lav run`, read from the header before any pixel is
  decoded, and the size must be the record's ``image_size``.
"""

from __future__ import annotations

import math
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import jsonsafe
from .errors import LavError
from .safeopen import open_regular, read_regular

#: The most planes (layers x heads, or one per recorded row) one saved array may stack over its grid.
MAX_PLANES = 16_384
#: Deflate's best ratio is 1032:1; anything claiming more than this per stored byte is not real.
_MAX_RATIO = 1100
_GRIDS = ("patch", "merged")
_STYLES = ("edge", "focus")


class RecordError(LavError):
    """A saved result folder that is damaged, forged or too large; the message names the part."""


def read_json(folder: Path) -> dict[str, Any]:
    """``result.json`` of ``folder``, parsed within bounds and checked field by field."""
    try:
        data = jsonsafe.loads(read_regular(folder / "result.json").decode("utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: JSON, UTF-8 and the bounds
        raise RecordError(f"cannot read {folder}/result.json ({_first(exc)}); save the result again") from exc
    if not isinstance(data, dict):
        raise RecordError(f"{folder}/result.json is not a JSON object; save the result again")
    return data


def check_record(data: dict[str, Any], where: str = "result.json", base_allowed: bool = True) -> None:
    """Every field `Result` needs, with its type; `RecordError` naming the first one that is wrong."""

    def need(cond: bool, key: str, want: str) -> None:
        if not cond:
            got = data.get(key, "missing") if isinstance(data, dict) else data
            shown = type(got).__name__ if got != "missing" else "missing"
            raise RecordError(f"{where}: {key!r} must be {want}, found {shown}; save the result again")

    for key in ("model", "family", "instruction", "response", "attention_backend"):
        need(isinstance(data.get(key), str), key, "text")
    for key in ("adapter", "click_error", "coords_convention"):
        need(data.get(key) is None or isinstance(data.get(key), str), key, "text or null")
    for key in ("adapter_enabled", "forced_response"):
        need(isinstance(data.get(key), bool), key, "true or false")
    for key in ("answer_tokens", "received_method"):
        need(_list_of(data.get(key), str), key, "a list of text")
    need(_list_of(data.get("resized_size"), int, 2, low=1), "resized_size", "two whole numbers >= 1")
    need(_list_of(data.get("image_size"), int, 2, low=1), "image_size", "two whole numbers >= 1")
    grid = data.get("grid")
    need(
        isinstance(grid, dict)
        and all(_whole(grid.get(k), 1) for k in ("t", "h", "w", "merge", "patch"))
        and all(isinstance(v, int) and not isinstance(v, bool) for v in grid.values()),
        "grid",
        "an object of whole numbers >= 1 (t, h, w, merge, patch)",
    )
    timings = data.get("timings")
    need(
        isinstance(timings, dict) and all(_number(v) for v in timings.values()),
        "timings",
        "an object of numbers",
    )
    click = data.get("click")
    need(click is None or _click_ok(click), "click", "null or a click (x, y, raw, kind, convention, ...)")
    need(
        data.get("agreement") is None or isinstance(data.get("agreement"), dict),
        "agreement",
        "null or an object",
    )
    for key in ("faithfulness", "zoom"):
        need(data.get(key) is None or isinstance(data.get(key), dict), key, "null or an object")
    maps = data.get("maps")
    need(isinstance(maps, dict) and bool(maps), "maps", "an object naming at least one map")
    for name, entry in maps.items():
        _check_map(name, entry, where)
    base = data.get("base")
    if base is not None:
        need(base_allowed and isinstance(base, dict), "base", "null or one base run (not nested)")
        check_record(base, f"{where} (base run)", base_allowed=False)


def _check_map(name: str, d: Any, where: str) -> None:
    def need(cond: bool, want: str) -> None:
        if not cond:
            raise RecordError(f"{where}: map {name!r} needs {want}; save the result again")

    need(isinstance(d, dict), "an object")
    need(isinstance(d.get("title"), str), "a title (text)")
    need(d.get("grid") in _GRIDS, f"a grid, one of {_GRIDS}")
    need(d.get("style") in _STYLES, f"a style, one of {_STYLES}")
    need(_list_of(d.get("shape"), int, 2, low=1), "a shape of two whole numbers")
    need(_list_of(d.get("layers"), int), "layers (a list of whole numbers)")
    need(_list_of(d.get("arrays"), str) and name not in d["arrays"], "arrays (a list of other names)")
    info = d.get("info")
    need(isinstance(info, dict), "info (an object)")
    if name == "focus":
        need(isinstance(info.get("tokens"), str), "info.tokens (text)")
        need(_list_of(info.get("rows"), int), "info.rows (whole numbers)")
    if "windowed_blocks" in info:
        need(_list_of(info["windowed_blocks"], int), "info.windowed_blocks (whole numbers)")


def read_arrays(folder: Path, data: dict[str, Any]) -> dict[str, np.ndarray]:
    """``maps.npz`` of ``folder``, each array's header checked before its data is read."""
    path = folder / "maps.npz"
    try:
        with open_regular(path) as fh:
            stored = fh.seek(0, 2)
            fh.seek(0)
            with zipfile.ZipFile(fh) as zf:
                bound = _element_bound(data)
                for info in zf.infolist():
                    with zf.open(info) as member:
                        _check_header(info, member, bound, stored)
            fh.seek(0)
            with np.load(fh, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise RecordError(f"cannot read {path} ({_first(exc)}); save the result again") from exc
    _check_shapes(data, arrays, "")
    return arrays


def _element_bound(data: dict[str, Any]) -> int:
    g = data["grid"]
    return max(1, g["t"] * g["h"] * g["w"]) * MAX_PLANES


def _check_header(info: zipfile.ZipInfo, member: Any, bound: int, stored: int) -> None:
    name = info.filename
    if not name.endswith(".npy"):
        raise RecordError(f"maps.npz holds {name!r}, which is not an array; save the result again")
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
    elif version in ((2, 0), (3, 0)):
        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise RecordError(f"maps.npz: {name} has an unknown array format {version}; save the result again")
    if dtype.hasobject or dtype.kind not in "biuf":
        raise RecordError(f"maps.npz: {name} holds {dtype}, not numbers; save the result again")
    count = math.prod(shape)
    size = count * dtype.itemsize
    if count > bound or size > _MAX_RATIO * max(stored, 1) or size > info.file_size:
        raise RecordError(
            f"maps.npz: {name} claims {size:,} bytes ({'x'.join(map(str, shape))} {dtype}), more than the "
            f"record's grid or the file's {stored:,} bytes can hold; the file is damaged, save the result again"
        )


def _check_shapes(data: dict[str, Any], arrays: dict[str, np.ndarray], prefix: str) -> None:
    g = data["grid"]
    grids = {"patch": (g["h"], g["w"]), "merged": (g["h"] // g["merge"], g["w"] // g["merge"])}
    for name, d in data["maps"].items():
        key = prefix + name
        missing = [k for k in (key, *(prefix + a for a in d["arrays"])) if k not in arrays]
        if missing:
            raise RecordError(f"maps.npz has no array {missing[0]!r}, which result.json names; save it again")
        values = arrays[key]
        want = grids[d["grid"]]
        if values.dtype.kind != "f" or values.shape != want or list(values.shape) != d["shape"]:
            raise RecordError(
                f"maps.npz: map {key!r} is {values.dtype} {values.shape}; its {d['grid']} grid needs float "
                f"{want}; save the result again"
            )
    if data.get("base") is not None:
        _check_shapes(data["base"], arrays, prefix + "base_")


def read_image(folder: Path, data: dict[str, Any], max_pixels: int) -> Image.Image:
    """``image.png`` of ``folder`` as RGB, refused from its header when over ``max_pixels``."""
    path = folder / "image.png"
    try:
        with open_regular(path) as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fh) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise RecordError(_too_big(path, w * h, max_pixels))
                if [w, h] != data["image_size"]:
                    raise RecordError(
                        f"{path} is {w}x{h}, but result.json says {data['image_size']}; save the result again"
                    )
                return img.convert("RGB") if img.mode != "RGB" else img.copy()
    except Image.DecompressionBombError as exc:
        raise RecordError(_too_big(path, None, max_pixels)) from exc
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError) as exc:
        raise RecordError(f"cannot read {path} ({_first(exc)}); save the result again") from exc


def _too_big(path: Path, pixels: int | None, max_pixels: int) -> str:
    size = f"{pixels:,} pixels" if pixels is not None else "a decompression bomb"
    return f"{path} has {size}, over the limit of {max_pixels:,}; pass a larger max_pixels if you trust it"


def _whole(v: Any, low: int | None = None) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and (low is None or v >= low)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _list_of(v: Any, kind: type, length: int | None = None, low: int | None = None) -> bool:
    if not isinstance(v, list) or (length is not None and len(v) != length):
        return False
    if kind is int:
        return all(_whole(x, low) for x in v)
    return all(isinstance(x, kind) for x in v)


def _click_ok(c: Any) -> bool:
    return (
        isinstance(c, dict)
        and _number(c.get("x"))
        and _number(c.get("y"))
        and isinstance(c.get("raw"), list)
        and all(_number(v) for v in c["raw"])
        and isinstance(c.get("kind"), str)
        and isinstance(c.get("convention"), str)
        and (c.get("box") is None or (isinstance(c["box"], list) and len(c["box"]) == 4))
        and (c.get("box") is None or all(_number(v) for v in c["box"]))
        and isinstance(c.get("in_range"), bool)
        and isinstance(c.get("inside_image"), bool)
        and (c.get("warning") is None or isinstance(c.get("warning"), str))
        and (c.get("confidence") is None or _number(c["confidence"]))
        and isinstance(c.get("digits", []), list)
        and all(isinstance(d, dict) and _number(d.get("p")) for d in c.get("digits", []))
        and isinstance(c.get("alternatives", []), list)
        and all(
            isinstance(a, dict) and _number(a.get("x")) and _number(a.get("y")) and _number(a.get("p"))
            for a in c.get("alternatives", [])
        )
    )


def _first(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
