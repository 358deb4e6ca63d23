"""Qwen2.5-VL = Qwen2-VL + windowed vision blocks, answering in pixels of the resized image."""

from __future__ import annotations

from dataclasses import replace

from .qwen2_vl import SPEC as QWEN2_VL
from .spec import ABSOLUTE_RESIZED

SPEC = QWEN2_VL.derive(
    family="qwen2_5_vl",
    title="Qwen2.5-VL",
    model_types=("qwen2_5_vl",),
    vision_attention=("Qwen2_5_VLVisionAttention",),
    text_attention=("Qwen2_5_VLAttention",),
    coords=ABSOLUTE_RESIZED,
    windowed=True,
    vision_width="hidden_size",  # the merger's output width moved to out_hidden_size
    processor=replace(QWEN2_VL.processor, processor="Qwen2_5_VLProcessor"),
    # Same decoder; the vision tower has a gated MLP (intermediate_size) and a merger output width.
    tiny=QWEN2_VL.tiny.derive(
        "Qwen2_5_VLConfig",
        drop_vision=("embed_dim", "mlp_ratio"),
        vision={
            "depth": 4,
            "intermediate_size": 128,
            "out_hidden_size": 64,
            # 56 px windows = 2x2 merge blocks: small grids already have several windows.
            "window_size": 56,
            "fullatt_block_indexes": [1, 3],
        },
    ),
)
