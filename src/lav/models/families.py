"""One small declarative spec per Qwen-VL family, each written as its difference from another."""

from __future__ import annotations

from .spec import ABSOLUTE_RESIZED, FULL_ATTENTION, LINEAR_ATTENTION, RELATIVE_1000, ModelSpec

QWEN2_VL = ModelSpec(
    family="qwen2_vl",
    model_types=("qwen2_vl",),
    vision_attention=("VisionAttention", "Qwen2VLVisionAttention"),
    text_attention=("Qwen2VLAttention",),
    coords=RELATIVE_1000,
)

# Qwen2.5-VL answers in pixels of the resized image and windows most vision blocks.
QWEN2_5_VL = QWEN2_VL.derive(
    family="qwen2_5_vl",
    model_types=("qwen2_5_vl",),
    vision_attention=("Qwen2_5_VLVisionAttention",),
    text_attention=("Qwen2_5_VLAttention",),
    coords=ABSOLUTE_RESIZED,
    windowed=True,
)

QWEN3_VL = ModelSpec(
    family="qwen3_vl",
    model_types=("qwen3_vl",),
    vision_attention=("Qwen3VLVisionAttention",),
    text_attention=("Qwen3VLTextAttention",),
    coords=RELATIVE_1000,
)

QWEN3_VL_MOE = QWEN3_VL.derive(
    family="qwen3_vl_moe",
    model_types=("qwen3_vl_moe",),
    vision_attention=("Qwen3VLMoeVisionAttention",),
    text_attention=("Qwen3VLMoeTextAttention",),
)

# Qwen3.5 = Qwen3-VL + Gated DeltaNet layers, which have no attention map.
QWEN3_5 = QWEN3_VL.derive(
    family="qwen3_5",
    model_types=("qwen3_5",),
    vision_attention=("Qwen3_5VisionAttention",),
    text_attention=("Qwen3_5Attention",),
    layer_kinds=(FULL_ATTENTION, LINEAR_ATTENTION),
)

QWEN3_5_MOE = QWEN3_5.derive(
    family="qwen3_5_moe",
    model_types=("qwen3_5_moe",),
    vision_attention=("Qwen3_5MoeVisionAttention",),
    text_attention=("Qwen3_5MoeAttention",),
)

FAMILIES: tuple[ModelSpec, ...] = (QWEN2_VL, QWEN2_5_VL, QWEN3_VL, QWEN3_VL_MOE, QWEN3_5, QWEN3_5_MOE)
