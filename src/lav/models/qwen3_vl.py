"""Qwen3-VL: patch 16, DeepStack, interleaved M-RoPE, answers on the 0-1000 relative scale."""

from __future__ import annotations

from .spec import RELATIVE_1000, ModelSpec, ProcessorSettings
from .tiny import TEXT, TinyConfig, rope

SPEC = ModelSpec(
    family="qwen3_vl",
    title="Qwen3-VL",
    model_types=("qwen3_vl",),
    vision_attention=("Qwen3VLVisionAttention",),
    text_attention=("Qwen3VLTextAttention",),
    coords=RELATIVE_1000,
    processor=ProcessorSettings(
        "Qwen3VLProcessor",
        "Qwen2VLImageProcessor",
        "Qwen3VLVideoProcessor",
        patch_size=16,
        image_mean=(0.5, 0.5, 0.5),
        image_std=(0.5, 0.5, 0.5),
    ),
    tiny=TinyConfig(
        "Qwen3VLConfig",
        text={**TEXT, "head_dim": 16, **rope([2, 3, 3], mrope_interleaved=True)},
        vision={
            "depth": 3,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_heads": 4,
            "out_hidden_size": 64,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [0, 1],
        },
    ),
)
