"""Loading a real checkpoint (hub id or local folder) and a PEFT adapter, with clear errors."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
import transformers
from torch import nn

from .analysis import Visualizer
from .errors import AdapterError, InputError, LavError
from .inputs import DEFAULT_MAX_PIXELS
from .models import spec_for_config

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: cuda, then mps, then cpu."""
    if str(device) != "auto":
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise InputError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from exc
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise InputError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``"auto"``: bfloat16 on a GPU that supports it, float16 on mps, float32 on the CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if device.type == "mps" else torch.float32
    if dtype not in _DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; use auto, {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def _looks_local(name: str) -> bool:
    # Hub ids are "org/name" (one slash); anything else path-like is a folder the user meant.
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or Path(name).expanduser().exists()


def _load_config(name: str):
    if _looks_local(name) and not Path(name).expanduser().is_dir():
        raise LavError(
            f"model folder {name} does not exist; pass a Hugging Face model id or a local checkpoint folder"
        )
    try:
        return transformers.AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True")
        hint = (
            "the hub is not reachable (offline mode): download it first and pass the local folder"
            if offline or not Path(name).exists()
            else "the folder has no readable config.json"
        )
        raise LavError(f"could not load model {name!r}: {hint} ({type(exc).__name__})") from exc


def load_adapter(model: nn.Module, adapter: str | os.PathLike) -> nn.Module:
    """Wrap ``model`` with the PEFT adapter in folder ``adapter``; refuse one made for another model."""
    import peft
    from safetensors import safe_open

    folder = Path(adapter).expanduser()
    if not folder.exists():
        raise AdapterError(f"adapter folder {folder} does not exist")
    if not folder.is_dir() or not (folder / "adapter_config.json").is_file():
        raise AdapterError(
            f"{folder} is not a PEFT adapter folder (no adapter_config.json); pass the folder that "
            "save_pretrained wrote, e.g. ./checkpoint-1200"
        )
    try:
        cfg = json.loads((folder / "adapter_config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AdapterError(f"{folder}/adapter_config.json is not valid JSON ({exc})") from exc
    trained_on = cfg.get("base_model_name_or_path")
    where = f" (it was trained on {trained_on!r})" if trained_on else ""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            wrapped = peft.PeftModel.from_pretrained(model, str(folder))
    except (RuntimeError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise AdapterError(f"adapter {folder} does not fit this model{where}: {first}") from exc
    for w in caught:
        text = str(w.message)
        if "missing adapter keys" in text.lower() or "unexpected" in text.lower():
            raise AdapterError(
                f"adapter {folder} does not fit this model{where}: {text.splitlines()[0][:200]}"
            )
    weights = folder / "adapter_model.safetensors"
    if weights.exists():
        with safe_open(str(weights), "pt") as f:
            stored = sum(1 for k in f.keys() if "lora_" in k)  # noqa: SIM118 (safe_open has no __iter__)
        loaded = sum(1 for n, _ in wrapped.named_parameters() if "lora_A" in n or "lora_B" in n)
        if stored and stored != loaded:
            raise AdapterError(
                f"adapter {folder} holds {stored} LoRA tensors but only {loaded} fit this model{where}; "
                "it was trained for a different base model"
            )
    return wrapped.eval()


def load(
    model: str | os.PathLike | nn.Module,
    adapter: str | os.PathLike | None = None,
    *,
    processor=None,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    attn_implementation: str = "sdpa",
    max_image_pixels: int = DEFAULT_MAX_PIXELS,
) -> Visualizer:
    """Load a Qwen-VL checkpoint (hub id or local folder) and optionally a LoRA adapter folder.

    ``model`` may also be a model object you already loaded; then pass its ``processor`` too.
    ``attn_implementation`` is the backend the model runs (``sdpa``, ``eager``, ``flash_attention_2``);
    the maps are recorded beside it without changing its output.
    """
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    if isinstance(model, nn.Module):
        if processor is None:
            raise InputError("pass processor= with a model object (AutoProcessor.from_pretrained(...))")
        spec_for_config(getattr(model, "config", None))
        name = getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__
        loaded = model
    else:
        name = str(model)
        config = _load_config(name)
        spec_for_config(config)  # refuse an unsupported family before loading any weights
        if processor is None:
            try:
                processor = transformers.AutoProcessor.from_pretrained(name)
            except (OSError, ValueError, TypeError) as exc:
                raise LavError(f"could not load the processor of {name!r}: {exc}") from exc
        try:
            loaded = transformers.AutoModelForImageTextToText.from_pretrained(
                name, dtype=torch_dtype, attn_implementation=attn_implementation
            )
        except ImportError as exc:
            raise LavError(
                f"attention implementation {attn_implementation!r} is not installed: {exc}"
            ) from exc
        except (OSError, ValueError) as exc:
            raise LavError(f"could not load the weights of {name!r}: {exc}") from exc
        loaded = loaded.to(dev)
    if adapter is not None:
        loaded = load_adapter(loaded, adapter)
    return Visualizer(
        loaded,
        processor,
        model_name=name,
        adapter_name=None if adapter is None else str(adapter),
        max_image_pixels=max_image_pixels,
    )
