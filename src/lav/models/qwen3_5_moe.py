"""Qwen3.5-MoE = Qwen3.5 with mixture-of-experts MLPs (and a shared expert) in the decoder."""

from __future__ import annotations

from .qwen3_5 import SPEC as QWEN3_5
from .qwen3_vl_moe import TINY_EXPERTS

SPEC = QWEN3_5.derive(
    family="qwen3_5_moe",
    title="Qwen3.5-MoE",
    model_types=("qwen3_5_moe",),
    vision_attention=("Qwen3_5MoeVisionAttention",),
    text_attention=("Qwen3_5MoeAttention",),
    tiny=QWEN3_5.tiny.derive(
        "Qwen3_5MoeConfig", text={**TINY_EXPERTS, "shared_expert_intermediate_size": 32}
    ),
)
