"""Qwen2-VL: patch 14, answers on the 0-1000 relative scale, plain ``VisionAttention`` blocks."""

from __future__ import annotations

from .spec import RELATIVE_1000, ModelSpec, ProcessorSettings
from .tiny import TEXT, TinyConfig, rope

#: OpenAI CLIP's normalisation, which Qwen2-VL and Qwen2.5-VL processors keep.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

SPEC = ModelSpec(
    family="qwen2_vl",
    title="Qwen2-VL",
    model_types=("qwen2_vl",),
    vision_attention=("VisionAttention", "Qwen2VLVisionAttention"),
    text_attention=("Qwen2VLAttention",),
    coords=RELATIVE_1000,
    # Qwen2-VL's vision hidden_size is the merger's output (the decoder's width); its blocks are embed_dim wide.
    vision_width="embed_dim",
    processor=ProcessorSettings(
        "Qwen2VLProcessor",
        "Qwen2VLImageProcessor",
        "Qwen2VLVideoProcessor",
        patch_size=14,
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
        default_system="You are a helpful assistant.",
    ),
    tiny=TinyConfig(
        "Qwen2VLConfig",
        text={**TEXT, "head_dim": 16, **rope([2, 3, 3], type="mrope")},
        vision={
            "depth": 3,
            "embed_dim": 64,
            "hidden_size": 64,
            "num_heads": 4,
            "mlp_ratio": 2,
            "patch_size": 14,
        },
    ),
)
