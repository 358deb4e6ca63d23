"""Tiny randomly initialised models of the real transformers classes, from each family's `TinyConfig`."""

from __future__ import annotations

from typing import Any

import torch
import transformers

from ..errors import InputError
from ..models import BY_FAMILY, ModelSpec


def family_spec(family: str) -> ModelSpec:
    """The spec of ``family`` (a family name such as ``"qwen3_vl"``); an `InputError` for any other."""
    spec = BY_FAMILY.get(family)
    if spec is None:
        raise InputError(f"unknown family {family!r}; pass one of: {', '.join(BY_FAMILY)}.")
    return spec


def available_families() -> list[str]:
    """Families whose config and processor classes exist in the installed transformers.

    Qwen3.5 needs transformers 5 and Qwen4-Exp 5.24; every other family builds on 4.57 too.
    """
    return [
        spec.family
        for spec in BY_FAMILY.values()
        if spec.tiny is not None
        and hasattr(transformers, spec.tiny.config_class)
        and (spec.processor is None or hasattr(transformers, spec.processor.processor))
    ]


def tiny_config(
    family: str, *, text: dict[str, Any] | None = None, vision: dict[str, Any] | None = None
) -> transformers.PretrainedConfig:
    """A tiny config of ``family`` (e.g. ``"qwen3_vl"``), with optional overrides of the sub-configs.

    ``text`` / ``vision`` update the family's tiny ``text_config`` / ``vision_config`` keywords
    (`lav.models.TinyConfig`); the vision token ids are those of `lav.testing` (``IMAGE_TOKEN_ID``...).
    """
    from ..models.tiny import TOKEN_IDS

    tiny = family_spec(family).tiny
    if tiny is None:
        raise InputError(f"{family} has no tiny config")
    cls = getattr(transformers, tiny.config_class, None)
    if cls is None:
        raise InputError(
            f"{tiny.config_class} is not in transformers {transformers.__version__}; "
            f"pick a family it has: {', '.join(available_families())}."
        )
    return cls(
        text_config={**tiny.text, **(text or {})},
        vision_config={**tiny.vision, **(vision or {})},
        **TOKEN_IDS,
    )


def tiny_model(
    family: str, seed: int = 0, attn_implementation: str = "sdpa", **overrides: Any
) -> transformers.PreTrainedModel:
    """A randomly initialised ``*ForConditionalGeneration`` of ``family`` in eval mode (float32).

    ``seed`` fixes the weights; ``overrides`` go to `tiny_config` (``text=``, ``vision=``).
    """
    config = tiny_config(family, **overrides)
    config._attn_implementation = attn_implementation
    torch.manual_seed(seed)
    model = transformers.AutoModelForImageTextToText.from_config(
        config, attn_implementation=attn_implementation
    )
    return model.eval()
