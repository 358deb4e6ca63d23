"""`lav plan`: the memory a model needs per device, before any weight is loaded.

The model is built on empty weights from its config (accelerate's ``init_empty_weights``); the map
is accelerate's own inference (``infer_auto_device_map``, balanced as transformers balances it) or
the user's map; sizes are accelerate's ``compute_module_sizes`` with bitsandbytes' weight dtypes for
the layers it quantizes. The capture extra is lav's own: capture's peak at that screenshot size
(`lav.capture.memory`, held against a measured run).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch

from .capture.memory import capture_memory
from .errors import InputError
from .inputs import MAX_ASPECT_RATIO

#: Prompt tokens besides the image (system turn, instruction) assumed for the decoder's key length.
PROMPT_TOKENS = 128
#: Vision blocks the default edge map records (the last two).
EDGE_BLOCKS = 2


@dataclass
class Plan:
    """Bytes of weights per device of ``device_map`` and the extra capture needs, per device."""

    device_map: dict[str, int | str]
    weights: dict[str, int]
    capture: dict[str, int]
    grid: tuple[int, int]  # patches (h, w) of the resized screenshot
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"screenshot grid: {self.grid[0]}x{self.grid[1]} patches"]
        for device in sorted(set(self.weights) | set(self.capture), key=str):
            out.append(
                f"{device}: weights {_gib(self.weights.get(device, 0))}, capture {_gib(self.capture.get(device, 0))}"
            )
        return out + self.notes


def _gib(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def plan(
    model: str | os.PathLike,
    image_size: tuple[int, int],
    *,
    device_map: Any = "auto",
    max_memory: str | dict | None = None,
    device: str = "auto",
    dtype: str = "auto",
    load_in_4bit: bool = False,
    load_in_8bit: bool = False,
    max_new_tokens: int = 64,
    adapter: str | os.PathLike | None = None,
) -> Plan:
    """The `Plan` of ``model`` (hub id or folder; config and processor files only) for a screenshot of
    ``image_size`` (width, height) original pixels, the default edge blocks (last two) and focus layer."""
    import transformers
    from accelerate import init_empty_weights
    from accelerate.utils import CustomDtype, compute_module_sizes, get_balanced_memory, infer_auto_device_map

    from .devices import resolve_device, resolve_dtype
    from .files import check_model_source
    from .geometry import smart_resize
    from .loading import load_config
    from .models import attention_sizes, inspect_model
    from .placement import check_device_map, read_device_map, read_max_memory

    width, height = image_size
    if width < 1 or height < 1:
        raise InputError(f"--image-size must be two positive numbers (width height), got {width} {height}")
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        # The processors refuse it (`smart_resize`), as `lav run` does an image of that shape.
        raise InputError(
            f"--image-size {width} {height} is wider than {MAX_ASPECT_RATIO}:1, which the Qwen-VL processors "
            "refuse; plan for the cropped screenshot"
        )
    name = os.fspath(model)
    config = load_config(name, check_model_source(name))
    shape = attention_sizes(config)  # also refuses a config of no family lav knows
    torch_dtype = resolve_dtype(dtype, resolve_device(device))
    with init_empty_weights():
        empty = transformers.AutoModelForImageTextToText.from_config(config)
    special: dict[str, Any] = {}
    if load_in_4bit or load_in_8bit:
        keep = _not_quantized(empty)
        bits = CustomDtype.INT4 if load_in_4bit else torch.int8
        for mod_name, module in empty.named_modules():
            if isinstance(module, torch.nn.Linear) and not any(
                mod_name == k or mod_name.startswith(k + ".") for k in keep
            ):
                special[f"{mod_name}.weight"] = bits
    dmap = read_device_map(device_map)
    memory = read_max_memory(max_memory)
    no_split = list(getattr(empty, "_no_split_modules", None) or [])
    if isinstance(dmap, str):
        if dmap != "sequential":
            memory = get_balanced_memory(
                empty, memory, no_split, torch_dtype, special or None, low_zero=dmap == "balanced_low_0"
            )
        dmap = infer_auto_device_map(empty, memory, no_split, torch_dtype, special or None)
    else:
        check_device_map(dmap, config, "offload")
    sizes = compute_module_sizes(empty, dtype=torch_dtype, special_dtypes=special or None)
    weights: dict[str, int] = {}
    for mod_name, dev in dmap.items():
        key = _device_name(dev)
        weights[key] = weights.get(key, 0) + int(sizes.get(mod_name, 0))

    patch, merge = shape.patch, shape.merge
    pixels = _pixel_bounds(name)
    h, w = smart_resize(height, width, patch * merge, *pixels)
    n = (h // patch) * (w // patch)
    parts = inspect_model(empty)
    names = {id(m): n for n, m in empty.named_modules()}
    devices = []
    for module in (parts.vision_attention[-1], parts.decoder_attention[-1]):
        key = _device_name(_device_of(dmap, names[id(module)]))
        devices.append("cpu" if key == "disk" else key)  # offloaded layers compute on the main device
    mem = capture_memory(
        n,
        shape.vision_heads,
        shape.vision_head_dim,
        EDGE_BLOCKS,
        text_heads=shape.text_heads,
        text_kv_heads=shape.text_kv_heads,
        text_head_dim=shape.text_head_dim,
        keys=n // merge**2 + PROMPT_TOKENS + max_new_tokens,
        answer_tokens=max_new_tokens,
        device_type=devices[0].split(":")[0],
        threads=torch.get_num_threads(),
        float32=torch_dtype == torch.float32,
        float64=torch_dtype == torch.float64,
    )
    capture: dict[str, int] = {}
    if devices[0] == devices[1]:
        capture[devices[0]] = mem.peak
    else:
        capture[devices[0]] = mem.vision_records + mem.vision_call
        capture[devices[1]] = mem.decoder
    notes = [
        f"capture: vision {_gib(mem.vision_records + mem.vision_call)} at most on the vision tower's device "
        f"({_gib(mem.vision_records)} kept, one block's pass {_gib(mem.vision_call)}), focus {_gib(mem.decoder)} "
        "on the last decoder layer's (lav.capture.memory)"
    ]
    notes.append(
        _faithfulness_note(config, parts, n // merge**2 + PROMPT_TOKENS + max_new_tokens, torch_dtype)
    )
    if adapter is not None:
        from .files import check_adapter_folder

        folder, _ = check_adapter_folder(adapter)
        size = sum(f.stat().st_size for f in folder.glob("adapter_model.*"))
        notes.append(f"adapter: {_gib(size)}, beside the layers it adapts")
    if "disk" in weights:
        notes.append("disk-offloaded layers run on the main device: leave room for the largest layer there")
    return Plan({k: v for k, v in dmap.items()}, weights, capture, (h // patch, w // patch), notes)


def _faithfulness_note(config, parts, tokens: int, dtype: torch.dtype) -> str:
    """What ``--faithfulness`` keeps besides the run: each forced batch's key/value cache (and the
    pooled rows whose greedy answers are decoded on), within `lav.faithful.decode.CACHE_BUDGET`."""
    from .faithful.decode import CACHE_BUDGET, batch_rows, cache_bytes, poolable
    from .faithful.options import DEFAULT_STEPS

    if not poolable(parts):
        return "faithfulness: no key/value cache kept (linear-attention layers: changed clicks are generated afresh)"
    row = cache_bytes(config, len(parts.decoder_attention), tokens, dtype.itemsize)
    batch = batch_rows(row, 2 * DEFAULT_STEPS)
    held = f"at most {_gib(max(CACHE_BUDGET, row))} of cache held, pooled rows included"
    return (
        f"faithfulness: key/value cache {_gib(row)} per step image; {batch} images per forward by default "
        f"({held}; --faithfulness-batch-size to set)"
    )


def _not_quantized(empty) -> list[str]:
    try:
        from transformers.quantizers.base import get_keys_to_not_convert
    except ImportError:  # transformers 4.57 keeps it with the bitsandbytes integration
        from transformers.integrations.bitsandbytes import get_keys_to_not_convert
    return list(get_keys_to_not_convert(empty))


def _pixel_bounds(name: str) -> tuple[int, int]:
    import transformers

    ip = transformers.AutoImageProcessor.from_pretrained(name)
    size = getattr(ip, "size", None)
    get = size.get if isinstance(size, dict) else lambda k, d=None: getattr(size, k, d)
    low = getattr(ip, "min_pixels", None) or get("shortest_edge")
    high = getattr(ip, "max_pixels", None) or get("longest_edge")
    return int(low), int(high)


def _device_of(dmap: dict[str, int | str], module: str) -> int | str:
    """The device the map gives ``module``: its entry or its nearest parent's."""
    above = [n for n in dmap if n == "" or module == n or module.startswith(n + ".")]
    return dmap[max(above, key=len)] if above else "cpu"


def _device_name(device: int | str) -> str:
    return f"cuda:{device}" if isinstance(device, int) else str(device)
