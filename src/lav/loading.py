"""`lav.load`: a real checkpoint (hub id or local folder) and a PEFT adapter, with clear errors.

Every file of a local folder is checked by `lav.files` before transformers or peft read it, so a
damaged or incomplete checkpoint is named with its file rather than met as a stack trace.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn

from .analysis import Visualizer
from .config_fields import FIX, VALIDATION_ERRORS, ConfigFieldError, check_fields
from .coords import CONVENTIONS
from .coords.rules import DEFAULT_RULES
from .demo import assets
from .devices import resolve_device, resolve_dtype  # noqa: F401  (also lav.loading.resolve_device)
from .errors import AdapterError, AdapterWarning, InputError, LavError, LavWarning, UnsupportedModelError
from .files import check_adapter_folder, check_model_source, check_tokenizer_files, read_json, reading
from .inputs import DEFAULT_MAX_PIXELS
from .models import spec_for_config
from .placement import placement_kwargs
from .presets import NO_PRESET, Preset, get_preset, pick
from .quiet import no_bitsandbytes, processor_notes_off, progress_bars, quiet_imports

# What transformers' and peft's loaders raise for input they cannot use (a bad value in a config, a
# tensor of the wrong shape, a missing file); anything else escaping them is a bug to see.
_LOADER_ERRORS = (OSError, ValueError, TypeError, KeyError, RuntimeError, AttributeError)


def load_config(name: str, folder: Path | None):
    """The model's config; ``folder`` is the local checkpoint `check_model_source` found, else None."""
    if folder is not None:
        check_fields(folder)
        with reading(folder / "config.json", "model config"):
            try:
                return transformers.AutoConfig.from_pretrained(str(folder))
            except (KeyError, TypeError, AttributeError, *VALIDATION_ERRORS) as exc:
                field = getattr(exc, "field", None) or re.search(r"field '([^']+)'", str(exc))
                field = field[1] if isinstance(field, re.Match) else field
                named = f"field {field} " if isinstance(field, str) else ""
                raise ConfigFieldError(
                    f"model config {folder / 'config.json'}: {named}is not usable ({_first(exc)}); {FIX}"
                ) from exc
    try:
        return transformers.AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True")
        hint = (
            f"there is no folder {name} here, and no hub model of that id in the local cache (offline "
            "mode); check the path, or download the model and pass its folder"
            if offline
            else f"there is no folder {name} here, and it is not a model on the hub (or the hub is not "
            "reachable); check the path or the id, or download the model and pass its folder"
        )
        raise LavError(f"could not load model {name!r}: {hint} ({type(exc).__name__})") from exc


def load_adapter(model: nn.Module, adapter: str | os.PathLike, model_name: str | None = None) -> nn.Module:
    """Wrap ``model`` with the PEFT adapter in folder ``adapter``; refuse one made for another model.

    Warns (one line) when the adapter names another base model than ``model_name`` (the model's
    ``config._name_or_path`` by default): a different name may still be the same weights, e.g. a local
    copy. Tensor shapes that do not fit are an `AdapterError`.
    """
    with no_bitsandbytes(), quiet_imports():  # peft imports it eagerly; a quantized model has it already
        import peft
    from safetensors import safe_open

    try:
        folder, cfg = check_adapter_folder(adapter)
    except AdapterError:
        raise
    except LavError as exc:
        raise AdapterError(str(exc)) from exc
    trained_on = cfg.get("base_model_name_or_path")
    where = f" (it was trained on {trained_on!r})" if isinstance(trained_on, str) and trained_on else ""
    loaded_name = model_name or getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    mismatch = base_mismatch(trained_on, loaded_name, getattr(model, "config", None), folder)
    if mismatch:
        warnings.warn(f"adapter {folder}: {mismatch}", AdapterWarning, stacklevel=2)
    try:
        with warnings.catch_warnings(record=True) as caught, no_bitsandbytes():
            warnings.simplefilter("always")
            wrapped = peft.PeftModel.from_pretrained(model, str(folder))
    except _LOADER_ERRORS as exc:
        raise AdapterError(f"adapter {folder} does not fit this model{where}: {_first(exc)}") from exc
    for w in caught:
        text = str(w.message)
        if "missing adapter keys" in text.lower() or "unexpected" in text.lower():
            raise AdapterError(
                f"adapter {folder} does not fit this model{where}: {text.splitlines()[0][:200]}"
            )
    weights = folder / "adapter_model.safetensors"
    if weights.exists():
        with reading(weights, "adapter weights"), safe_open(str(weights), "pt") as f:
            stored = sum(1 for k in f.keys() if "lora_" in k)  # noqa: SIM118 (safe_open has no __iter__)
        loaded = sum(1 for n, _ in wrapped.named_parameters() if "lora_A" in n or "lora_B" in n)
        if stored and stored != loaded:
            raise AdapterError(
                f"adapter {folder} holds {stored} LoRA tensors but only {loaded} fit this model{where}; "
                "it was trained for a different base model"
            )
    return wrapped.eval()


def base_mismatch(trained_on: object, loaded_name: str, config: object, adapter_folder: Path) -> str | None:
    """Why the adapter's ``base_model_name_or_path`` may not be the loaded model, or None if it matches.

    Names are compared by their last path component (a hub id and a local copy of it match, as does
    ``org/name`` against ``.../name``); one name ending with the other after a ``-`` or ``_`` counts as
    the same. When the adapter folder also holds a ``config.json``, its ``model_type`` and hidden sizes
    are compared with ``config``.
    """
    reasons = []
    if isinstance(trained_on, str) and trained_on and loaded_name:
        a, b = _last_component(trained_on), _last_component(loaded_name)
        if not _same_name(a, b):
            reasons.append(f"it was trained on {trained_on!r}, but the model loaded is {loaded_name!r}")
    if config is not None and (adapter_folder / "config.json").is_file():
        theirs = read_json(adapter_folder / "config.json", "adapter's base config")
        for key, mine, other in _config_facts(config, theirs):
            if mine is not None and other is not None and mine != other:
                reasons.append(f"its config.json has {key}={other!r}, the model has {mine!r}")
    if not reasons:
        return None
    return "; ".join(reasons) + " (fine if it is the same model under another name)"


def _last_component(name: str) -> str:
    return name.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1].lower()


def _same_name(a: str, b: str) -> bool:
    if a == b:
        return True
    short, long = sorted((a, b), key=len)
    return bool(short) and long.endswith(short) and long[-len(short) - 1] in "-_"


def _config_facts(config: object, theirs: dict):
    text = getattr(config, "text_config", None) or config
    their_text = theirs.get("text_config") if isinstance(theirs.get("text_config"), dict) else theirs
    yield "model_type", getattr(config, "model_type", None), theirs.get("model_type")
    for key in ("hidden_size", "num_hidden_layers", "vocab_size"):
        yield key, getattr(text, key, None), their_text.get(key)


def load(
    model: str | os.PathLike | nn.Module,
    adapter: str | os.PathLike | None = None,
    *,
    processor=None,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    attn_implementation: str = "sdpa",
    max_image_pixels: int = DEFAULT_MAX_PIXELS,
    device_map: str | os.PathLike | dict | None = None,
    offload_folder: str | os.PathLike | None = None,
    max_memory: str | dict | None = None,
    load_in_4bit: bool = False,
    load_in_8bit: bool = False,
    preset: str | Preset | None = None,
    image_pixels: tuple[int, int] | None = None,
    progress: bool = False,
) -> Visualizer:
    """Load a Qwen-VL checkpoint (hub id or local folder) and optionally a LoRA adapter folder.

    ``"demo"`` names the tiny demo model shipped with lav (and ``adapter="demo"`` its LoRA adapter):
    ``lav.load("demo", adapter="demo")`` needs no download.

    ``model`` may also be a model object you already loaded; then pass its ``processor`` too. It is
    used as it is: ``device`` and ``dtype`` left at ``"auto"`` keep its placement, and any other
    value that differs from the model's raises `InputError` (move or cast it yourself first).
    ``attn_implementation`` is the backend the model runs (``sdpa``, ``eager``, ``flash_attention_2``);
    the maps are recorded beside it without changing its output.

    A model larger than one device: ``device_map`` is one of `lav.placement.STRATEGIES` or a
    ``{module name: device}`` dict or JSON file (``"disk"`` offloads into ``offload_folder``),
    ``max_memory`` caps each device (``"0=20GiB,cpu=64GiB"``); the model then stays where the map put
    it. ``load_in_4bit`` / ``load_in_8bit`` quantize the base with bitsandbytes (a base saved
    quantized needs neither); a LoRA adapter goes on top as in QLoRA.

    ``preset``: how the model's authors run it (`lav.presets`: prompt, resize bounds, convention,
    refusals, answer length), by name or as a `Preset`; None picks one when the model id or the
    checkpoint's ``name_or_path`` names a known model (said on stderr), ``"none"`` runs without.
    ``image_pixels``: ``(min_pixels, max_pixels)`` the processor resizes screenshots into,
    overriding the preset's (None: the preset's, else the processor's own).
    ``progress``: show transformers' loading bars (on stderr); off by default, so nothing lands in
    a notebook cell. bitsandbytes is imported only for a quantized load (`lav.quiet`).
    """
    model, adapter = assets.model_path(model), assets.adapter_path(adapter)
    if isinstance(max_image_pixels, bool) or not isinstance(max_image_pixels, int) or max_image_pixels <= 0:
        raise InputError(
            f"max_image_pixels must be a positive integer, got {max_image_pixels!r}; "
            "pass the largest width x height to accept"
        )
    image_pixels = check_pixels(image_pixels)
    chosen = _explicit_preset(preset)
    if isinstance(model, nn.Module):
        if processor is None:
            raise InputError("pass processor= with a model object (AutoProcessor.from_pretrained(...))")
        if (
            device_map is not None
            or offload_folder is not None
            or max_memory is not None
            or load_in_4bit
            or load_in_8bit
        ):
            raise InputError(
                "device_map, offload_folder, max_memory and load_in_4bit/8bit apply when lav loads the model; "
                "pass them to from_pretrained for a model object"
            )
        _check_placement(model, device, dtype)
        check_processor(processor, getattr(model, "config", None), "the processor passed")
        spec_for_config(getattr(model, "config", None))
        name = getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__
        chosen = chosen if preset is not None else _auto_preset(name)
        loaded = model
    elif isinstance(model, (str, os.PathLike)):
        dev = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, dev)
        name = os.fspath(model)
        config, processor, chosen = read_checkpoint(name, preset, processor)
        placement = placement_kwargs(
            config, dev, device_map, offload_folder, max_memory, load_in_4bit, load_in_8bit, torch_dtype
        )
        with no_bitsandbytes(), progress_bars(progress):  # bitsandbytes stays if placement imported it
            loaded = _load_weights(name, torch_dtype, attn_implementation, placement)
        if not placement:
            loaded = loaded.to(dev)
    else:
        raise InputError(
            f"model must be a Hugging Face model id, a checkpoint folder or a loaded model, got {type(model).__name__}"
        )
    if adapter is not None:
        with progress_bars(progress):
            loaded = load_adapter(loaded, adapter, model_name=name)
    viz = Visualizer(
        loaded,
        processor,
        model_name=name,
        adapter_name=None if adapter is None else os.fspath(adapter),
        max_image_pixels=max_image_pixels,
    )
    apply_preset(viz, chosen, image_pixels)
    return viz


def read_checkpoint(
    name: str, preset: str | Preset | None = None, processor=None
) -> tuple[Any, Any, Preset | None]:
    """What `load` reads of checkpoint ``name`` before its weights: the config (of a supported
    family), the processor (``processor`` when given; checked either way) and the preset (``preset``
    by name, ``"none"``, or None to pick one by the model id as `load` does)."""
    local = check_model_source(name)  # every file of a local folder, before transformers reads it
    chosen = _explicit_preset(preset)
    if preset is None:
        # By the id first: a model lav cannot run (OpenCUA) is named before its config is read.
        chosen = _auto_preset(name, _saved_name(local))
    config = load_config(name, local)
    spec_for_config(config)  # refuse an unsupported family before loading any weights
    if processor is None:
        if local is not None:
            check_tokenizer_files(local)
        processor = _load_processor(name)
    check_processor(processor, config, name)
    return config, processor, chosen


def apply_preset(viz: Visualizer, preset: Preset | None, image_pixels: tuple[int, int] | None = None) -> None:
    """Give ``viz`` the preset's request defaults, resize bounds and refusal rules (``image_pixels``,
    when given, replaces the preset's bounds). A preset made for another family is used, with a warning."""
    viz.preset = preset
    viz.image_pixels = image_pixels if image_pixels is not None else (preset and preset.image_pixels)
    viz.answer_rules = DEFAULT_RULES if preset is None else preset.rules()
    if preset is None:
        return
    if preset.coords not in CONVENTIONS:
        raise InputError(
            f"preset {preset.name} reads answers as {preset.coords!r}, a convention this lav does not know "
            f"({', '.join(CONVENTIONS)}); update lav"
        )
    if viz.parts.family not in preset.families:
        warnings.warn(
            f"preset {preset.name} is for {', '.join(preset.families)} models but this is a {viz.parts.family} "
            "model; its prompt and convention are used as they are",
            LavWarning,
            stacklevel=3,
        )


def _explicit_preset(preset: str | Preset | None) -> Preset | None:
    """The preset asked for by name or object (None for ``"none"`` or when none was named)."""
    if preset is None or isinstance(preset, Preset):
        return preset
    if not isinstance(preset, str):
        raise InputError(f"preset must be a preset name, 'none' or None, got {type(preset).__name__}")
    return None if preset.strip().lower() == NO_PRESET else get_preset(preset)


def _auto_preset(*names: str | None) -> Preset | None:
    """The preset a model id or ``name_or_path`` names, said on stderr; a model lav cannot run is refused."""
    found = pick(*names)
    if found is None:
        return None
    preset, matched = found
    if preset.unsupported:
        raise UnsupportedModelError(f"{matched}: {preset.unsupported}")
    print(
        f"lav: preset {preset.name} ({preset.title}), since the model is {matched!r}; "
        f"--preset NAME (preset=) picks another, --preset {NO_PRESET} runs without",
        file=sys.stderr,
        flush=True,
    )
    return preset


def _saved_name(folder: Path | None) -> str | None:
    """The ``_name_or_path`` a local checkpoint's config.json was saved with (the model it came from)."""
    if folder is None or not (folder / "config.json").is_file():
        return None
    value = read_json(folder / "config.json", "model config").get("_name_or_path")
    return value if isinstance(value, str) else None


def check_pixels(pixels: object) -> tuple[int, int] | None:
    if pixels is None:
        return None
    ok = (
        isinstance(pixels, (tuple, list))
        and len(pixels) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in pixels)
        and 0 < pixels[0] <= pixels[1]
    )
    if not ok:
        raise InputError(
            f"image_pixels must be (min_pixels, max_pixels) with 0 < min <= max, got {pixels!r} "
            "(--pixels MIN:MAX on the command line)"
        )
    return int(pixels[0]), int(pixels[1])  # type: ignore[index]


def _check_placement(model: nn.Module, device: str | torch.device, dtype: str | torch.dtype) -> None:
    """Refuse a ``device`` / ``dtype`` other than ``"auto"`` that the caller's model does not have."""
    params = list(model.parameters())
    if not params:
        raise InputError("the model has no parameters; pass a loaded Qwen-VL model")
    if not (isinstance(device, str) and device == "auto"):
        want = resolve_device(device)
        have = params[0].device
        if want.type != have.type or (want.index is not None and want.index != (have.index or 0)):
            raise InputError(
                f"the model is on {have} but device={str(device)!r} was given; lav does not move your model: "
                "move it first (model.to(...)) or pass device='auto' to use it where it is"
            )
    if not (isinstance(dtype, str) and dtype == "auto"):
        want_dtype = resolve_dtype(dtype, params[0].device)
        counts: dict[torch.dtype, int] = {}
        for p in params:
            if p.is_floating_point():
                counts[p.dtype] = counts.get(p.dtype, 0) + p.numel()
        have_dtype = max(counts, key=counts.__getitem__) if counts else None
        if have_dtype != want_dtype:
            raise InputError(
                f"the model's weights are {have_dtype} but dtype={str(dtype)!r} was given; lav does not cast "
                "your model: cast it first (model.to(dtype)) or pass dtype='auto' to use it as it is"
            )


def _load_processor(name: str):
    try:
        with processor_notes_off():
            return transformers.AutoProcessor.from_pretrained(name)
    except LavError:
        raise
    except MemoryError:
        raise
    except Exception as exc:
        # The tokenizers library raises a bare `Exception` for a tokenizer.json it cannot use.
        if not (isinstance(exc, _LOADER_ERRORS) or type(exc) is Exception):
            raise
        raise LavError(
            f"could not load the processor (tokenizer, image processor) of {name!r}: {type(exc).__name__}: "
            f"{_first(exc)}; restore the folder's tokenizer and processor files"
        ) from exc


def check_processor(processor, config, name: str) -> None:
    """Refuse a processor that cannot prompt this model with an image: its chat template must render
    a user turn with the image token, and its tokenizer must read that token as the model's
    ``image_token_id``.

    A truncated ``chat_template.jinja`` or a missing or foreign ``tokenizer.json`` otherwise fails
    only at the first analysis, deep inside jinja or the model's image-token count.
    """
    probe = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Click it"}]}]
    fix = "restore the folder's chat_template.jinja (or chat_template in its tokenizer_config.json)"
    try:
        text = processor.apply_chat_template(probe, add_generation_prompt=True, tokenize=False)
    except AttributeError as exc:
        raise LavError(f"{name} has no apply_chat_template: pass a transformers processor") from exc
    except Exception as exc:
        # jinja2 raises its own TemplateError (not a ValueError) for a broken template.
        if not (isinstance(exc, (ValueError, TypeError, KeyError)) or "jinja2" in type(exc).__module__):
            raise
        raise LavError(
            f"the chat template of {name} cannot be used ({type(exc).__name__}: {_first(exc)}); {fix}"
        ) from exc
    image_token = getattr(processor, "image_token", None)
    if not isinstance(text, str) or (isinstance(image_token, str) and image_token not in text):
        raise LavError(
            f"the chat template of {name} does not place the image ({image_token!r} missing); {fix}"
        )
    tokenizer = getattr(processor, "tokenizer", None)
    want = getattr(config, "image_token_id", None)
    if not isinstance(image_token, str) or tokenizer is None or want is None:
        return
    ids = list(tokenizer(image_token, add_special_tokens=False)["input_ids"])
    if ids != [want]:
        raise LavError(
            f"the tokenizer of {name} reads the image token {image_token!r} as {ids[:8]}, not as the "
            f"model's image_token_id {want}; restore the folder's tokenizer.json (or pass the model's own processor)"
        )


def _attn_problem(name: str, problem: str) -> str:
    """One line for an attention backend that cannot run here, with what to use instead."""
    needs = ""
    if name.startswith("flash"):
        gpu = "a CUDA GPU" + ("" if torch.cuda.is_available() else "; this machine has none")
        needs = f" (it needs the flash-attn package and {gpu})"
    return (
        f"--attn-implementation {name} {problem}{needs}; use sdpa (the default: PyTorch's fused "
        "attention, on every device) or eager"
    )


def _load_weights(
    name: str, torch_dtype: torch.dtype, attn_implementation: str, placement: dict | None = None
) -> nn.Module:
    if not isinstance(attn_implementation, str):
        raise InputError(f"attn_implementation must be a string such as 'sdpa', got {attn_implementation!r}")
    try:
        loaded, info = transformers.AutoModelForImageTextToText.from_pretrained(
            name,
            dtype=torch_dtype,
            attn_implementation=attn_implementation,
            output_loading_info=True,
            **(placement or {}),
        )
    except ImportError as exc:
        raise LavError(_attn_problem(attn_implementation, "is not installed")) from exc
    except MemoryError:
        raise
    except _LOADER_ERRORS as exc:
        if "attn_implementation" in str(exc):
            raise LavError(_attn_problem(attn_implementation, "is not a backend transformers knows")) from exc
        raise LavError(
            f"could not load the weights of {name!r}: {type(exc).__name__}: {_first(exc)}"
        ) from exc
    missing = list(info.get("missing_keys") or ())
    mismatched = list(info.get("mismatched_keys") or ())
    if missing or mismatched:
        first = (missing or [m[0] if isinstance(m, tuple) else m for m in mismatched])[0]
        raise LavError(
            f"the weights of {name!r} do not match its config.json ({len(missing)} missing, "
            f"{len(mismatched)} of the wrong shape, e.g. {first}); the folder is incomplete or its files "
            "come from different models"
        )
    return loaded


def _first(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]
