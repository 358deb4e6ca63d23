"""Every supported family's spec, found by ``config.model_type`` or by family name.

To add a family, write its module (a `ModelSpec` named ``SPEC``, usually derived from a relative's)
and list the module here; nothing else in `lav` names a family.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ..errors import UnsupportedModelError
from . import qwen2_5_vl, qwen2_vl, qwen3_5, qwen3_5_moe, qwen3_vl, qwen3_vl_moe, qwen4_exp
from .spec import ModelSpec

FAMILIES: tuple[ModelSpec, ...] = tuple(
    m.SPEC for m in (qwen2_vl, qwen2_5_vl, qwen3_vl, qwen3_vl_moe, qwen3_5, qwen3_5_moe, qwen4_exp)
)

#: ``config.model_type`` -> spec.
BY_MODEL_TYPE: Mapping[str, ModelSpec] = MappingProxyType(
    {t: spec for spec in FAMILIES for t in spec.model_types}
)
#: Family name ("qwen2_5_vl") -> spec.
BY_FAMILY: Mapping[str, ModelSpec] = MappingProxyType({spec.family: spec for spec in FAMILIES})

SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(BY_MODEL_TYPE)

if len(BY_MODEL_TYPE) != sum(len(s.model_types) for s in FAMILIES) or len(BY_FAMILY) != len(FAMILIES):
    raise AssertionError("two family specs claim the same model_type or family name")


def spec_for_config(config) -> ModelSpec:
    """The spec of the family whose ``model_type`` the config has; a clear error for any other."""
    spec = BY_MODEL_TYPE.get(getattr(config, "model_type", None))
    if spec is not None:
        return spec
    titles = ", ".join(s.title or s.family for s in FAMILIES)
    raise UnsupportedModelError(
        f"model type {getattr(config, 'model_type', None)!r} is not supported; lav supports the Qwen-VL "
        f"families: {', '.join(SUPPORTED_MODEL_TYPES)} ({titles}). Pass a checkpoint of one of them."
    )
