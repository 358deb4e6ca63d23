"""The fields of a checkpoint's ``config.json`` and image-processor config, checked before transformers
builds anything from them: a wrong type or value is one `ConfigFieldError` naming the file and the field.

Unchecked, such a field surfaces far from its cause: transformers 5 raises its own validation error
with a stack trace, 4.57 builds the config and fails (or, worse, runs) inside the model's code, and
a processor whose patch size differs from the model's draws every map on the wrong grid.

Three layers, in this order:
- the type of every field that the family's transformers config class has (its default value says
  the kind: a flag, a number, a text, a list, an object), so a field transformers reads is never
  taken on trust, whatever the family;
- the sizes and indices lav's geometry reads (`POSITIVE`, `INDEX_LISTS`, token ids): integers in range;
- the processor's grid (``patch_size``, ``merge_size``, ``temporal_patch_size``, pixel limits, mean and
  std), and that it is the model's grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import LavError

FIX = "restore the file from where you got the checkpoint (or save_pretrained it again)"

#: Integer sizes that must be >= 1 wherever they appear (top level, text_config, vision_config).
POSITIVE = frozenset(
    {
        "depth", "hidden_size", "num_heads", "intermediate_size", "patch_size", "spatial_merge_size",
        "temporal_patch_size", "in_channels", "out_hidden_size", "num_position_embeddings", "embed_dim",
        "window_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
        "vocab_size", "max_position_embeddings", "full_attention_interval",
    }
)  # fmt: skip
#: Lists of vision-block indices: integers in 0 .. depth-1.
INDEX_LISTS = frozenset({"deepstack_visual_indexes", "fullatt_block_indexes"})
#: Token ids: an integer >= 0 (eos may be a list of them); null where the model has none.
TOKEN_IDS = frozenset(
    {"image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"}
    | {"bos_token_id", "eos_token_id", "pad_token_id"}
)
#: Numbers that must be > 0 (a base frequency, an epsilon), also inside the rope settings.
POSITIVE_NUMBERS = frozenset({"rope_theta", "rms_norm_eps", "layer_norm_eps", "partial_rotary_factor"})
#: The rope settings (an object): transformers 5 names it rope_parameters, 4.57 rope_scaling.
ROPE = ("rope_parameters", "rope_scaling")
#: Sections of config.json that hold a sub-config (an object).
SECTIONS = ("text_config", "vision_config")


class ConfigFieldError(LavError):
    """A field of a checkpoint's config file with the wrong type or value."""


def check_fields(folder: Path) -> None:
    """Every field of ``folder``'s config.json and image-processor config that lav or transformers
    reads, checked for type and value; `ConfigFieldError` names the file and the field."""
    import transformers

    from .files import read_json

    path = folder / "config.json"
    raw = read_json(path, "model config", fix=FIX)
    model_type = raw.get("model_type")
    known = isinstance(model_type, str) and model_type in transformers.CONFIG_MAPPING
    check_config(path, raw, transformers.CONFIG_MAPPING[model_type] if known else None)
    settings = processor_settings(folder)
    if settings is not None:
        check_processor_config(settings[0], settings[1], raw)


def _validation_errors() -> tuple[type[BaseException], ...]:
    # transformers 5 checks config fields with huggingface_hub's strict dataclasses, whose errors
    # are neither ValueError nor TypeError: the catch-all for a field the rules here do not know.
    import huggingface_hub.errors as hub_errors

    found = getattr(hub_errors, "StrictDataclassError", None)
    return (found,) if isinstance(found, type) else ()


#: What transformers raises for a config field it refuses (beside KeyError / TypeError).
VALIDATION_ERRORS = _validation_errors()


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _fail(path: Path, field: str, want: str, value: Any) -> ConfigFieldError:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return ConfigFieldError(f"{path}: field {field} must be {want}, got {shown} ({_kind(value)}); {FIX}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# --- config.json ----------------------------------------------------------------------------------
def check_config(path: Path, data: Mapping[str, Any], config_class: type | None) -> None:
    """Refuse ``data`` (the parsed ``config.json`` at ``path``) if a field has the wrong type or value.

    ``config_class``: the transformers config class of its ``model_type`` (None when transformers has
    none: the family check then says so), whose defaults give each field's kind.
    """
    if not isinstance(data.get("model_type"), str):
        raise _fail(path, "model_type", "a text such as 'qwen3_vl'", data.get("model_type"))
    sub_classes = dict(getattr(config_class, "sub_configs", None) or {})
    for name in SECTIONS:
        if name in data and data[name] is not None and not isinstance(data[name], dict):
            raise _fail(path, name, "an object (the sub-model's settings)", data[name])
    _check_section(path, "", data, _defaults(config_class), skip=SECTIONS)
    text = data.get("text_config") if isinstance(data.get("text_config"), dict) else data
    vision = data.get("vision_config") if isinstance(data.get("vision_config"), dict) else {}
    if text is not data:
        _check_section(path, "text_config.", text, _defaults(sub_classes.get("text_config")))
    _check_section(path, "vision_config.", vision, _defaults(sub_classes.get("vision_config")))
    vocab = text.get("vocab_size")
    for name in TOKEN_IDS & set(data):
        _check_token(path, name, data[name], vocab)
    for name in TOKEN_IDS & set(text) if text is not data else ():
        _check_token(path, f"text_config.{name}", text[name], vocab)


def _defaults(config_class: type | None) -> object | None:
    if not isinstance(config_class, type):
        return None  # AutoConfig or absent: no defaults to read kinds from
    try:
        return config_class()
    except Exception:  # a config class that cannot be built bare: only lav's own rules apply
        return None


def _check_section(
    path: Path, prefix: str, section: Mapping[str, Any], defaults: object | None, skip=()
) -> None:
    for name in sorted(POSITIVE & set(section)):  # sizes first: the index rules below read the depth
        value = section[name]
        if value is None and name in ("head_dim", "num_key_value_heads"):
            continue  # transformers derives them when absent
        if not _is_int(value) or value < 1:
            raise _fail(path, prefix + name, "a whole number >= 1", value)
    for name in sorted(POSITIVE_NUMBERS & set(section)):
        if section[name] is not None and not (_is_number(section[name]) and section[name] > 0):
            raise _fail(path, prefix + name, "a number > 0", section[name])
    for name in ROPE:
        if section.get(name) is not None:
            _check_rope(path, prefix + name, section[name])
    depth = section.get("depth")
    for name, value in section.items():
        if name in skip or name in POSITIVE or name in POSITIVE_NUMBERS or name in ROPE:
            continue
        field = prefix + name
        if name in INDEX_LISTS:
            top = depth if _is_int(depth) else None
            ok = isinstance(value, list) and all(_is_int(i) and i >= 0 for i in value)
            if not ok or (top is not None and any(i >= top for i in value)):
                bound = f" below the depth {top}" if top is not None else ""
                raise _fail(path, field, f"a list of vision block numbers (0 or more{bound})", value)
            continue
        if name in TOKEN_IDS or value is None or defaults is None:
            continue
        default = getattr(defaults, name, None)
        if default is None or isinstance(default, type):
            continue
        want = _want(default)
        if want is not None and not _fits(value, default):
            raise _fail(path, field, want, value)


def _check_rope(path: Path, field: str, rope: Any) -> None:
    """The rope settings: an object; its base frequency a number > 0, its M-RoPE sections (how the
    head's rotary dimensions split over time, height and width) whole numbers >= 1."""
    if not isinstance(rope, dict):
        raise _fail(path, field, "an object (the rotary embedding's settings)", rope)
    theta = rope.get("rope_theta")
    if theta is not None and not (_is_number(theta) and theta > 0):
        raise _fail(path, f"{field}.rope_theta", "a number > 0", theta)
    if "rope_type" in rope and not isinstance(rope["rope_type"], str):
        raise _fail(path, f"{field}.rope_type", "a text such as 'default'", rope["rope_type"])
    section = rope.get("mrope_section")
    if section is not None and not (
        isinstance(section, list) and all(_is_int(v) and v >= 1 for v in section)
    ):
        raise _fail(path, f"{field}.mrope_section", "a list of whole numbers >= 1", section)
    if "mrope_interleaved" in rope and not isinstance(rope["mrope_interleaved"], bool):
        raise _fail(path, f"{field}.mrope_interleaved", "true or false", rope["mrope_interleaved"])


def _want(default: Any) -> str | None:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, (int, float)):
        return "a number"
    if isinstance(default, str):
        return "a text"
    if isinstance(default, (list, tuple)):
        return "a list"
    if isinstance(default, dict) or hasattr(default, "to_dict"):
        return "an object"
    return None


def _fits(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):
        return _is_number(value)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        return isinstance(value, list)
    return isinstance(value, dict)


def _check_token(path: Path, field: str, value: Any, vocab: Any) -> None:
    if value is None:
        return
    ids = value if isinstance(value, list) and field.endswith("eos_token_id") else [value]
    top = vocab if _is_int(vocab) else None
    if not all(_is_int(i) and i >= 0 and (top is None or i < top) for i in ids):
        bound = f" below vocab_size {top}" if top is not None else ""
        raise _fail(path, field, f"a token id (a whole number >= 0{bound})", value)


# --- the image processor ---------------------------------------------------------------------------
#: Image-processor fields the Qwen processors read, and what each must be.
PROCESSOR_INTS = ("patch_size", "merge_size", "temporal_patch_size", "min_pixels", "max_pixels")
PROCESSOR_FLAGS = ("do_resize", "do_rescale", "do_normalize", "do_convert_rgb")


def check_processor_config(path: Path, data: Mapping[str, Any], config: Mapping[str, Any] | None) -> None:
    """Refuse the image-processor settings ``data`` (from ``path``: ``preprocessor_config.json``, or
    the ``image_processor`` object of ``processor_config.json``) with a field of the wrong type or
    value, or a patch grid other than the model's (``config``: the parsed config.json)."""
    prefix = "image_processor." if path.name == "processor_config.json" else ""
    kind = data.get("image_processor_type")
    if kind is not None and not isinstance(kind, str):
        raise _fail(path, prefix + "image_processor_type", "a text such as 'Qwen2VLImageProcessor'", kind)
    for name in PROCESSOR_INTS:
        value = data.get(name)
        if value is None:
            continue
        if not _is_int(value) or value < 1:
            raise _fail(path, prefix + name, "a whole number >= 1", value)
    for name in PROCESSOR_FLAGS:
        if name in data and not isinstance(data[name], bool):
            raise _fail(path, prefix + name, "true or false", data[name])
    size = data.get("size")
    if size is not None:
        if not isinstance(size, dict):
            raise _fail(path, prefix + "size", "an object (shortest_edge, longest_edge)", size)
        for key, value in size.items():
            if value is not None and (not _is_int(value) or value < 1):
                raise _fail(path, f"{prefix}size.{key}", "a whole number >= 1", value)
    for name in ("image_mean", "image_std"):
        value = data.get(name)
        if value is None:
            continue
        ok = isinstance(value, list) and len(value) == 3 and all(_is_number(v) for v in value)
        if not ok or (name == "image_std" and any(v <= 0 for v in value)):
            rule = "3 numbers, one per colour channel" + (", each > 0" if name == "image_std" else "")
            raise _fail(path, prefix + name, rule, value)
    if "rescale_factor" in data and not (_is_number(data["rescale_factor"]) and data["rescale_factor"] > 0):
        raise _fail(path, prefix + "rescale_factor", "a number > 0", data["rescale_factor"])
    if "resample" in data and not (_is_int(data["resample"]) and 0 <= data["resample"] <= 5):
        raise _fail(path, prefix + "resample", "a PIL resampling filter number (0 to 5)", data["resample"])
    vision = (config or {}).get("vision_config")
    if isinstance(vision, dict):
        for mine, theirs in (("patch_size", "patch_size"), ("merge_size", "spatial_merge_size")):
            a, b = data.get(mine), vision.get(theirs)
            if _is_int(a) and _is_int(b) and a != b:
                raise ConfigFieldError(
                    f"{path}: field {prefix}{mine} is {a}, but the model's vision_config.{theirs} is {b}; "
                    f"every map would sit on the wrong grid. {FIX}"
                )


def processor_settings(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """The image-processor settings of a checkpoint folder and the file they come from, if any:
    ``preprocessor_config.json``, else ``processor_config.json``'s ``image_processor`` object."""
    from .files import read_json

    pre = folder / "preprocessor_config.json"
    if pre.is_file():
        return pre, read_json(pre, "image processor config", fix=FIX)
    proc = folder / "processor_config.json"
    if proc.is_file():
        data = read_json(proc, "processor config", fix=FIX)
        image = data.get("image_processor")
        if image is None:
            return None
        if not isinstance(image, dict):
            raise _fail(proc, "image_processor", "an object (the image processor's settings)", image)
        return proc, image
    return None
