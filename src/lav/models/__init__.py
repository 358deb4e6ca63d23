"""Per-family knowledge: which Qwen-VL families `lav` supports and where their parts are.

`inspect_model(model)` is the one entry point: it finds the family's spec by ``config.model_type``
(also under a PEFT wrapper), checks every setting we rely on, and returns a `ModelParts` that the
rest of `lav` uses without knowing any family's name.
"""

from __future__ import annotations

from .families import FAMILIES
from .parts import ModelParts, inspect_model, resolve_layers, spec_for_config
from .spec import ABSOLUTE_RESIZED, RELATIVE_1000, ModelSpec, unwrap

SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(t for spec in FAMILIES for t in spec.model_types)

__all__ = [
    "ABSOLUTE_RESIZED",
    "FAMILIES",
    "RELATIVE_1000",
    "SUPPORTED_MODEL_TYPES",
    "ModelParts",
    "ModelSpec",
    "inspect_model",
    "resolve_layers",
    "spec_for_config",
    "unwrap",
]
