"""Per-family knowledge: which Qwen-VL families `lav` supports and where their parts are.

One small module per family (`qwen2_vl`, `qwen2_5_vl`, `qwen3_vl`, `qwen3_vl_moe`, `qwen3_5`,
`qwen3_5_moe`, `qwen4_exp`) holds its `ModelSpec` (written as its difference from a relative), the settings of
its processor and a tiny test config; `registry` collects them by ``model_type``.

`inspect_model(model)` is the one entry point: it finds the family's spec by ``config.model_type``
(also under a PEFT wrapper), checks every setting we rely on, and returns a `ModelParts` that the
rest of `lav` uses without knowing any family's name.
"""

from __future__ import annotations

from .parts import AttentionSizes, ModelParts, attention_sizes, inspect_model, resolve_layers
from .registry import BY_FAMILY, FAMILIES, SUPPORTED_MODEL_TYPES, spec_for_config
from .spec import ABSOLUTE_RESIZED, RELATIVE_1000, ModelSpec, ProcessorSettings, unwrap
from .tiny import TinyConfig

__all__ = [
    "ABSOLUTE_RESIZED",
    "AttentionSizes",
    "BY_FAMILY",
    "FAMILIES",
    "RELATIVE_1000",
    "SUPPORTED_MODEL_TYPES",
    "ModelParts",
    "ModelSpec",
    "ProcessorSettings",
    "TinyConfig",
    "attention_sizes",
    "inspect_model",
    "resolve_layers",
    "spec_for_config",
    "unwrap",
]
