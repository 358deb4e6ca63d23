"""Qwen3-VL-MoE = Qwen3-VL with mixture-of-experts MLPs in the decoder (same processor)."""

from __future__ import annotations

from .qwen3_vl import SPEC as QWEN3_VL

#: Decoder keys of a tiny mixture of experts (4 experts, 2 per token).
TINY_EXPERTS = {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32}

SPEC = QWEN3_VL.derive(
    family="qwen3_vl_moe",
    title="Qwen3-VL-MoE",
    model_types=("qwen3_vl_moe",),
    vision_attention=("Qwen3VLMoeVisionAttention",),
    text_attention=("Qwen3VLMoeTextAttention",),
    tiny=QWEN3_VL.tiny.derive(
        "Qwen3VLMoeConfig", text=TINY_EXPERTS, vision={"deepstack_visual_indexes": [1]}
    ),
)
