"""Every file and folder lav reads goes through here: OS and parse errors become one `LavError` line.

`check_path` answers "is this a usable file / folder?" (missing, a dangling symlink, the wrong kind,
unreadable); `reading` turns what reading a file can raise (`OSError`, `JSONDecodeError`,
`UnicodeDecodeError`, safetensors' `SafetensorError`) into a `LavError` that names the file and the
fix; `read_json` and `check_safetensors` are the two readers built on them. `check_model_folder` and
`check_adapter_folder` run them over what transformers and peft will read, before they read it, so
a damaged checkpoint is named instead of surfacing as a stack trace from deep inside a loader.
Torch-free: the CLI calls these before the heavy imports.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from . import jsonsafe
from .errors import LavError

#: JSON files of a Hugging Face model folder that transformers reads when present.
MODEL_JSON = (
    "config.json",
    "generation_config.json",
    "processor_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.json",
    "vocab.json",
    "model.safetensors.index.json",
)
#: Plain-text files of a model folder that transformers reads when present.
MODEL_TEXT = ("chat_template.jinja", "merges.txt")

# A safetensors file starts with the byte length of its JSON header (little-endian u64); the format
# caps the header at 100 MB, so a larger value is damage, not a big model.
_SAFETENSORS_HEADER_MAX = 100_000_000
_SAFETENSORS_ITEMSIZE = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
    "C64": 8,
    "F8_E8M0": 1,
    "F8_E4M3FNUZ": 1,
    "F8_E5M2FNUZ": 1,
}
#: Sub-byte dtypes the format also knows: their sizes are the loader's to check.
_SAFETENSORS_PACKED = ("F4", "F6_E2M3", "F6_E3M2")


def as_path(path: object, what: str, error: type[LavError] = LavError) -> Path:
    """``path`` as a `Path` with ``~`` expanded; ``error`` for anything that is not path-like."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise error(f"{what} must be a path (str or pathlib.Path), got {type(path).__name__}")
    text = os.fspath(path)
    if not text or not text.strip():
        raise error(f"{what} is an empty path; pass the path of the {what}")
    if "\x00" in text:
        raise error(f"{what} {text!r} contains a NUL character; pass a real path")
    return Path(text).expanduser()


def check_path(
    path: object,
    what: str,
    *,
    kind: Literal["file", "dir"] = "file",
    fix: str = "check the path",
    error: type[LavError] = LavError,
) -> Path:
    """``path`` as a `Path` once it is an existing, readable file (or folder, ``kind="dir"``).

    ``what`` names it in the error ("image file", "adapter folder"); ``fix`` is the advice that ends
    the message; ``error`` is the `LavError` subclass raised. Follows symlinks, and names a dangling
    one as such.
    """
    p = as_path(path, what, error)
    try:
        st = p.stat()
    except FileNotFoundError:
        if p.is_symlink():
            raise error(
                f"{what} {p} is a symbolic link to {os.readlink(p)}, which does not exist; {fix}"
            ) from None
        raise error(f"{what} {p} does not exist; {fix}") from None
    except OSError as exc:
        raise error(f"cannot read {what} {p} ({_reason(exc)}); {fix}") from exc
    is_dir = os.path.isdir(p)
    if kind == "file" and is_dir:
        raise error(f"{what} {p} is a directory; pass the path of the file itself")
    if kind == "dir" and not is_dir:
        raise error(f"{what} {p} is a file, not a folder; pass the folder that holds it")
    if kind == "file" and not os.path.isfile(p):
        raise error(f"{what} {p} is not a regular file (mode {oct(st.st_mode)}); {fix}")
    needed = os.R_OK | (os.X_OK if kind == "dir" else 0)
    if not os.access(p, needed):
        raise error(f"cannot read {what} {p} (permission denied); make it readable for this user")
    return p


@contextmanager
def reading(
    path: object, what: str, fix: str = "restore or re-download it", error: type[LavError] = LavError
) -> Iterator[None]:
    """Turn what reading ``path`` can raise into one ``error`` that names the file and ``fix``.

    Catches `OSError`, `ValueError` (which covers `json.JSONDecodeError` and `UnicodeDecodeError`)
    and safetensors' `SafetensorError`; a `LavError` raised inside passes through unchanged.
    """
    try:
        yield
    except LavError:
        raise
    except PermissionError as exc:
        raise error(f"cannot read {what} {path} (permission denied); make it readable for this user") from exc
    except IsADirectoryError as exc:
        raise error(f"{what} {path} is a directory; pass the path of the file itself") from exc
    except OSError as exc:
        raise error(f"cannot read {what} {path} ({_reason(exc)}); {fix}") from exc
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); {fix}") from exc
    except json.JSONDecodeError as exc:
        raise error(
            f"{what} {path} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); {fix}"
        ) from exc
    except ValueError as exc:
        raise error(f"{what} {path} is damaged ({_first_line(exc)}); {fix}") from exc
    except Exception as exc:
        if type(exc).__name__ != "SafetensorError":  # safetensors' own class, without importing it
            raise
        raise error(f"{what} {path} is not a valid safetensors file ({_first_line(exc)}); {fix}") from exc


def read_text(path: object, what: str, fix: str = "restore or re-download it") -> str:
    """The UTF-8 text of file ``path``; a `LavError` naming it if it cannot be read."""
    p = check_path(path, what, fix=fix)
    with reading(p, what, fix):
        return p.read_text(encoding="utf-8")


def read_json(
    path: object,
    what: str,
    expect: type | tuple[type, ...] = dict,
    fix: str = "restore or re-download it",
) -> Any:
    """The parsed JSON in file ``path``, which must be an instance of ``expect`` (an object by default).

    ``what`` names the file in errors ("adapter config"); ``fix`` ends them.
    """
    text = read_text(path, what, fix)
    with reading(path, what, fix):
        value = jsonsafe.loads(text)
    if not isinstance(value, expect) or (expect is dict and isinstance(value, bool)):
        want = _json_kind(expect)
        raise LavError(f"{what} {path} holds a JSON {_json_kind(type(value))}, not a JSON {want}; {fix}")
    return value


def check_safetensors(path: object, what: str, fix: str = "restore or re-download it") -> dict[str, Any]:
    """The header of safetensors file ``path`` once its size, JSON and tensor offsets agree.

    Catches a truncated or overwritten file before a loader memory-maps it: the header must be a
    JSON object whose tensors' byte ranges lie inside the file and match their dtype and shape.
    """
    p = check_path(path, what, fix=fix)
    with reading(p, what, fix):
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise LavError(f"{what} {p} is truncated ({size} bytes, no safetensors header); {fix}")
            (n,) = struct.unpack("<Q", head)
            if n > _SAFETENSORS_HEADER_MAX or 8 + n > size:
                raise LavError(
                    f"{what} {p} is truncated or damaged (its header claims {n:,} bytes, the file has "
                    f"{size:,}); {fix}"
                )
            raw = f.read(n)
        header = jsonsafe.loads(raw.decode("utf-8"))
    if not isinstance(header, dict):
        raise LavError(f"{what} {p} has a damaged header (not a JSON object); {fix}")
    data = size - 8 - n
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info.get("dtype") if isinstance(info, dict) else None
        if dtype not in _SAFETENSORS_ITEMSIZE and dtype not in _SAFETENSORS_PACKED:
            # A flipped bit in a dtype name: safetensors itself would raise its own error class.
            raise LavError(
                f"{what} {p} is damaged (tensor {name!r} has no known dtype: {str(dtype)[:20]!r}); {fix}"
            )
        ok = isinstance(info, dict) and _tensor_fits(info, data)
        if not ok:
            raise LavError(
                f"{what} {p} is truncated or damaged (tensor {name!r} does not fit in the "
                f"{data:,} bytes of data); {fix}"
            )
        end = max(end, info["data_offsets"][1])
    if end != data:
        raise LavError(
            f"{what} {p} is truncated or damaged (its tensors need {end:,} bytes of data, the file "
            f"holds {data:,}); {fix}"
        )
    return header


def looks_local(name: str) -> bool:
    """Whether model ``name`` means a folder on this machine rather than a hub id (``org/name``)."""
    return (
        name.startswith(("/", ".", "~"))
        or name.count("/") > 1
        or os.path.lexists(Path(name).expanduser())
        or not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name)
    )


def check_model_source(model: object) -> Path | None:
    """The local folder that ``model`` names, once `check_model_folder` passes; None for a hub id."""
    name = os.fspath(as_path(model, "model")) if not isinstance(model, str) else model
    if not name.strip():
        raise LavError("the model is an empty name; pass a Hugging Face model id or a checkpoint folder")
    if not looks_local(name):
        first = name.split("/")[0]
        if "/" in name and os.path.isdir(first):
            # "models/nope" reads as a hub id, but a folder "models" here says the user meant a path.
            raise LavError(
                f"model folder {name} does not exist ({first}/ is a folder here, but holds no "
                f"{name.split('/', 1)[1]}); pass an existing checkpoint folder, or a Hugging Face model id"
            )
        return None
    folder = as_path(name, "model folder")
    check_model_folder(folder)
    return folder


def check_model_folder(folder: Path) -> None:
    """Refuse a local model folder that transformers could not load, naming the file and the problem.

    Needs a ``config.json`` and weights (``*.safetensors``); every JSON, text and safetensors file
    that transformers would read must parse.
    """
    fix = "restore the folder from where you got it (or save_pretrained it again)"
    check_path(
        folder, "model folder", kind="dir", fix="pass a Hugging Face model id or a local checkpoint folder"
    )
    if not any(folder.iterdir()):
        raise LavError(f"model folder {folder} is empty; pass the folder that save_pretrained wrote")
    if not (folder / "config.json").exists() and not (folder / "config.json").is_symlink():
        raise LavError(
            f"model folder {folder} has no config.json, so it is not a Hugging Face checkpoint; "
            "pass the folder that save_pretrained wrote"
        )
    for name in MODEL_JSON:
        if _present(folder / name):
            read_json(folder / name, "model file", fix=fix)
    for name in MODEL_TEXT:
        if _present(folder / name):
            read_text(folder / name, "model file", fix=fix)
    weights = sorted(folder.glob("*.safetensors"))
    if not weights and not any(folder.glob("*.bin")):
        raise LavError(
            f"model folder {folder} has no weights (*.safetensors); the download or save is incomplete"
        )
    for w in weights:
        check_safetensors(w, "model weights", fix=fix)


def check_adapter_folder(folder: object) -> tuple[Path, dict[str, Any]]:
    """The adapter folder as a `Path` and its parsed ``adapter_config.json``, once both are sound."""
    fix = "pass the folder that save_pretrained wrote, e.g. ./checkpoint-1200"
    p = check_path(folder, "adapter folder", kind="dir", fix=fix)
    if not _present(p / "adapter_config.json"):
        raise LavError(f"{p} is not a PEFT adapter folder (no adapter_config.json); {fix}")
    cfg = read_json(p / "adapter_config.json", "adapter config", fix=fix)
    weights = p / "adapter_model.safetensors"
    if _present(weights):
        check_safetensors(weights, "adapter weights", fix="save the adapter again")
    elif not _present(p / "adapter_model.bin"):
        raise LavError(f"adapter folder {p} has no adapter_model.safetensors; save the adapter again")
    return p, cfg


def check_tokenizer_files(folder: Path) -> None:
    """Refuse a model folder without tokenizer files: transformers would build a tokenizer anyway,
    one that does not know the model's image token."""
    if not any(_present(folder / n) for n in ("tokenizer.json", "vocab.json", "tokenizer.model")):
        raise LavError(
            f"model folder {folder} has no tokenizer (tokenizer.json); copy the tokenizer files beside "
            "config.json (processor.save_pretrained writes them)"
        )


def _present(p: Path) -> bool:
    return p.exists() or p.is_symlink()  # a dangling link is present, and `check_path` names it


def _tensor_fits(info: dict, data: int) -> bool:
    offsets, shape, dtype = info.get("data_offsets"), info.get("shape"), info.get("dtype")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
        return False
    if not (isinstance(shape, list) and all(type(s) is int and s >= 0 for s in shape)):
        return False
    begin, stop = offsets
    if not 0 <= begin <= stop <= data:
        return False
    count = 1
    for s in shape:
        count *= s
    item = _SAFETENSORS_ITEMSIZE.get(dtype) if isinstance(dtype, str) else None
    return item is None or count * item == stop - begin  # an unknown dtype is the loader's to name


def _json_kind(t: type | tuple[type, ...]) -> str:
    names = {dict: "object", list: "list", str: "string", int: "number", float: "number", bool: "boolean"}
    if isinstance(t, tuple):
        return " or ".join(names.get(x, x.__name__) for x in t)
    return "null" if t is type(None) else names.get(t, t.__name__)


def _reason(exc: OSError) -> str:
    return exc.strerror or _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
