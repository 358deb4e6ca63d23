"""Device and dtype resolution: which torch device and dtype a name stands for on this machine.

Its own room so that loading (`lav.loading`) and placement (`lav.placement`) both use it without
importing each other.
"""

from __future__ import annotations

import torch

from .errors import InputError

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_DEVICES = "auto, cpu, cuda, cuda:N, mps or xpu"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: cuda, then mps, then cpu. Otherwise a device that exists on this machine."""
    if isinstance(device, torch.device):
        dev = device
    elif not isinstance(device, str):
        raise InputError(f"device must be a string such as 'cpu' or 'cuda:0', got {type(device).__name__}")
    elif device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, ValueError) as exc:
            raise InputError(f"unknown device {device!r}; use {_DEVICES}") from exc
    _check_device(dev)
    return dev


def _check_device(dev: torch.device) -> None:
    if dev.type == "cpu":
        return
    if dev.type == "meta":
        raise InputError("device 'meta' holds no weights, so nothing can run on it; use --device cpu or cuda")
    backend = getattr(torch, dev.type, None)  # torch.cuda, torch.xpu, torch.mps, torch.npu...
    if dev.type == "mps":
        available, count = _mps_available(), 1
    elif backend is not None and callable(getattr(backend, "is_available", None)):
        available = bool(backend.is_available())
        count = backend.device_count() if available and hasattr(backend, "device_count") else 0
    else:
        available, count = _can_allocate(dev), 1
    if not available:
        raise InputError(
            f"device {str(dev)!r} was asked for but this machine (torch {torch.__version__}) has no "
            f"usable {dev.type} device; use --device cpu (or auto)"
        )
    if dev.index is not None and dev.index >= count:
        raise InputError(
            f"device {str(dev)!r} does not exist: this machine has {count} {dev.type} device(s) "
            f"({dev.type}:0..{dev.type}:{count - 1}); pick one of them"
        )


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def _can_allocate(dev: torch.device) -> bool:
    try:
        torch.empty(1, device=dev)
    except Exception:  # torch raises RuntimeError, NotImplementedError or ImportError by backend
        return False
    return True


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``"auto"``: bfloat16 on a GPU that supports it, float16 on mps, float32 on the CPU."""
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise InputError(f"dtype {dtype} is not a floating-point type; use {', '.join(_DTYPES)}")
        return dtype
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if device.type == "mps" else torch.float32
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; use auto, {', '.join(_DTYPES)}")
    return _DTYPES[dtype]
