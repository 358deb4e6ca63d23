"""Where the weights go: `accelerate` device maps (GPUs, CPU, disk offload) and bitsandbytes bases.

`lav.load` hands these to transformers' ``from_pretrained`` as they are (``device_map``,
``offload_folder``, ``max_memory``, ``quantization_config``); this module only reads and checks
them first, so a wrong module name, a device this machine lacks or a missing bitsandbytes backend is
one line naming the fix instead of a stack trace from deep inside the loader.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import weakref
from pathlib import Path
from typing import Any

import torch

from . import jsonsafe
from .devices import resolve_device
from .errors import InputError, LavError

#: The strategies accelerate infers a map from (``infer_auto_device_map``), as transformers accepts them.
STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")

DeviceMap = str | dict[str, int | str]

_QUANT_INSTALL = "pip install 'lav[quant]' (bitsandbytes; its CPU backend was checked with 0.50.2)"


def placement_kwargs(
    config: Any,
    dev: torch.device,
    device_map: str | os.PathLike | dict | None,
    offload_folder: str | os.PathLike | None,
    max_memory: str | dict | None,
    load_in_4bit: bool,
    load_in_8bit: bool,
    dtype: torch.dtype | None = None,
) -> dict[str, Any]:
    """``from_pretrained`` arguments that place the weights; empty: all on ``dev`` by ``.to(dev)``."""
    out: dict[str, Any] = {}
    dmap = read_device_map(device_map)
    if dmap is None and (offload_folder is not None or max_memory is not None):
        raise InputError("offload_folder and max_memory need a device map: pass --device-map too")
    quant = quantization(bool(load_in_4bit), bool(load_in_8bit), config, dev, dtype)
    saved_quantized = getattr(config, "quantization_config", None) is not None
    if dmap is None and (quant is not None or saved_quantized):
        dmap = {"": str(dev)}  # a quantized model cannot be moved by .to(); it is loaded in place
    if dmap is None:
        return out
    check_device_map(dmap, config, offload_folder)
    out["device_map"] = dmap
    if offload_folder is not None:
        out["offload_folder"] = os.fspath(offload_folder)
    memory = read_max_memory(max_memory)
    if memory is not None:
        out["max_memory"] = memory
    if quant is not None:
        out["quantization_config"] = quant
    return out


def read_device_map(value: str | os.PathLike | dict | None) -> DeviceMap | None:
    """A strategy name, or ``{module name: device}`` from a dict or a JSON file (``"disk"`` offloads).

    Devices are checked here (``cpu``, ``disk``, ``cuda:N`` or ``N``, ``mps``, ``xpu:N``); module
    names are checked against the model in `check_device_map`.
    """
    if value is None:
        return None
    if isinstance(value, str) and value in STRATEGIES:
        return value
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if not path.is_file():
            raise InputError(
                f"device map {os.fspath(value)!r} is neither one of {', '.join(STRATEGIES)} nor a JSON file"
            )
        try:
            value = jsonsafe.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(
                f"device map {path} is not readable JSON ({type(exc).__name__}); write an object such as "
                '{"model.visual": "cpu", "model.language_model": 0, "lm_head": 0}'
            ) from exc
        where = str(path)
    else:
        where = "device_map"
    if not isinstance(value, dict) or not value:
        raise InputError(f"{where} must be a non-empty object of module name -> device")
    out: dict[str, int | str] = {}
    for name, device in value.items():
        if not isinstance(name, str):
            raise InputError(f"{where}: module names must be strings, got {name!r}")
        out[name] = _check_map_device(device, name, where)
    return out


def _check_map_device(device: object, name: str, where: str) -> int | str:
    if device in ("cpu", "disk"):
        return device  # type: ignore[return-value]
    if isinstance(device, bool) or not isinstance(device, (int, str)):
        raise InputError(f"{where}: device of {name!r} must be a string or GPU index, got {device!r}")
    if isinstance(device, int):
        if device < 0:
            raise InputError(f"{where}: device of {name!r} is {device}; GPU indices start at 0")
        text = f"cuda:{device}"
    else:
        text = device
    if text == "meta" or text == "auto":
        raise InputError(f"{where}: device {text!r} of {name!r} holds no weights; use cpu, disk or a GPU")
    try:
        resolve_device(text)
    except InputError as exc:
        raise InputError(f"{where}: module {name!r}: {exc}") from None
    return device


def check_device_map(device_map: DeviceMap, config: Any, offload_folder: str | os.PathLike | None) -> None:
    """Refuse a map that names modules the model lacks or leaves some of its weights without a device.

    Built on empty weights (no memory): the model's own module names are the truth, whatever the
    transformers release calls them.
    """
    if isinstance(device_map, str):
        return
    if "disk" in device_map.values() and offload_folder is None:
        raise InputError("the device map offloads to 'disk': pass --offload-folder DIR (offload_folder=)")
    names, params = _module_names(config)
    unknown = [n for n in device_map if n and n not in names]
    if unknown:
        near = sorted(n for n in names if n.count(".") <= 2)[:12]
        raise InputError(
            f"device map names {len(unknown)} module(s) this model does not have, e.g. {unknown[0]!r}; "
            f"its modules include {', '.join(near)}"
        )
    if "" in device_map:
        return
    missed = [p for p in params if not any(p == n or p.startswith(n + ".") for n in device_map)]
    if missed:
        raise InputError(
            f"device map leaves {len(missed)} weight(s) without a device, e.g. {missed[0]!r}; "
            "give their module (or a parent of it) a device"
        )


def _module_names(config: Any) -> tuple[set[str], list[str]]:
    import transformers
    from accelerate import init_empty_weights

    with init_empty_weights():
        empty = transformers.AutoModelForImageTextToText.from_config(config)
    names = {n for n, _ in empty.named_modules() if n}
    params = [n for n, _ in empty.named_parameters()] + [n for n, _ in empty.named_buffers()]
    return names, params


_MEMORY = re.compile(r"^\s*([^=\s]+)\s*=\s*(\d+(?:\.\d+)?\s*[KMGT]i?B)\s*$", re.IGNORECASE)


def read_max_memory(value: str | dict | None) -> dict[int | str, str] | None:
    """``"0=20GiB,1=20GiB,cpu=64GiB"`` (or the dict itself) as accelerate's ``max_memory``."""
    if value is None or isinstance(value, dict):
        return value
    out: dict[int | str, str] = {}
    for part in str(value).split(","):
        m = _MEMORY.match(part)
        if m is None:
            raise InputError(
                f"max memory {part.strip()!r} is not DEVICE=SIZE; write e.g. 0=20GiB,1=20GiB,cpu=64GiB"
            )
        device, size = m.group(1), m.group(2).replace(" ", "")
        out[int(device) if device.isdigit() else device] = size
    return out


def quantization(
    load_in_4bit: bool,
    load_in_8bit: bool,
    config: Any,
    device: torch.device,
    dtype: torch.dtype | None = None,
):
    """The ``BitsAndBytesConfig`` asked for, or None; also checks a base saved already quantized.

    4-bit is NF4 with double quantization and compute in ``dtype`` (the rest of the model's), as
    QLoRA trains it. Raises `LavError` when the installed bitsandbytes cannot run on ``device``.
    """
    saved = getattr(config, "quantization_config", None)
    if load_in_4bit and load_in_8bit:
        raise InputError("pass one of --load-in-4bit and --load-in-8bit")
    if not (load_in_4bit or load_in_8bit):
        if saved is not None and _method(saved) == "bitsandbytes":
            check_bitsandbytes(device)
        return None
    if saved is not None:
        raise InputError(
            f"the model is saved already quantized ({_method(saved)}); drop --load-in-4bit/--load-in-8bit"
        )
    check_bitsandbytes(device)
    from transformers import BitsAndBytesConfig

    if load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )


def _method(saved: Any) -> str:
    method = saved.get("quant_method") if isinstance(saved, dict) else getattr(saved, "quant_method", None)
    return str(getattr(method, "value", method) or "unknown")


def check_bitsandbytes(device: torch.device) -> None:
    """Raise `LavError` (what to install) unless bitsandbytes imports and runs a 4-bit round trip on ``device``."""
    try:
        version = importlib.metadata.version("bitsandbytes")
    except importlib.metadata.PackageNotFoundError:
        raise LavError(
            f"quantized loading needs bitsandbytes, which is not installed: {_QUANT_INSTALL}"
        ) from None
    try:
        import bitsandbytes.functional as bnb_f

        x = torch.ones(64, 64, device=device, dtype=torch.float32)
        packed, state = bnb_f.quantize_4bit(x, quant_type="nf4")
        bnb_f.dequantize_4bit(packed, state)
    except Exception as exc:  # bitsandbytes raises RuntimeError, NotImplementedError or OSError by backend
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise LavError(
            f"bitsandbytes {version} has no backend for {device.type} here ({type(exc).__name__}: {first}); "
            f"{_QUANT_INSTALL}, or load without --load-in-4bit/--load-in-8bit"
        ) from exc


def input_device(model: torch.nn.Module) -> torch.device:
    """Where inputs go: the device the input embeddings compute on.

    Under a device map that is the execution device of the accelerate hook on the embeddings or on
    the nearest module above them (an offloaded module's weights sit on ``meta`` between calls), not
    the device of whichever parameter comes first.
    """
    embeddings = model.get_input_embeddings()
    for module in [embeddings, *reversed(_ancestors(model, embeddings))]:
        device = _hook_device(getattr(module, "_hf_hook", None))
        if device is not None:
            return device
    for p in embeddings.parameters():
        if p.device.type != "meta":
            return p.device
    for p in model.parameters():
        if p.device.type != "meta":
            return p.device
    return torch.device("cpu")


#: model -> the name of its input embeddings, found by a walk of every module, which on a small
#: model costs as much as its forward at batch 1 (`lav eval` asks once per batch). A name, not the
#: modules: a value that held the model would keep it alive in this weak dictionary.
_EMBEDDING_NAMES: weakref.WeakKeyDictionary[torch.nn.Module, str] = weakref.WeakKeyDictionary()


def _ancestors(model: torch.nn.Module, embeddings: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules of ``model`` that hold ``embeddings``, root first (walked again when the name
    found before no longer leads to them, e.g. after ``resize_token_embeddings``)."""
    name = _EMBEDDING_NAMES.get(model)
    if name is None or _submodule(model, name) is not embeddings:
        name = next((n for n, m in model.named_modules() if m is embeddings), "")
        _EMBEDDING_NAMES[model] = name
    parts = name.split(".") if name else []
    # The root, then every module between it and the embeddings.
    return [model, *(model.get_submodule(".".join(parts[:i])) for i in range(1, len(parts)))]


def _submodule(model: torch.nn.Module, name: str) -> torch.nn.Module | None:
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def _hook_device(hook: Any) -> torch.device | None:
    if hook is None:
        return None
    for inner in getattr(hook, "hooks", ()):  # accelerate's SequentialHook
        device = _hook_device(inner)
        if device is not None:
            return device
    device = getattr(hook, "execution_device", None)
    if device is None:
        return None
    return torch.device(f"cuda:{device}") if isinstance(device, int) else torch.device(device)
