"""Qwen3.5 = Qwen3-VL + Gated DeltaNet (linear-attention) decoder layers, which have no attention map.

Focus layer indices refer to the full-attention layers only. Checkpoints ship Qwen3-VL's processor.
"""

from __future__ import annotations

from .qwen3_vl import SPEC as QWEN3_VL
from .spec import FULL_ATTENTION, LINEAR_ATTENTION

SPEC = QWEN3_VL.derive(
    family="qwen3_5",
    title="Qwen3.5",
    model_types=("qwen3_5",),
    vision_attention=("Qwen3_5VisionAttention",),
    text_attention=("Qwen3_5Attention",),
    layer_kinds=(FULL_ATTENTION, LINEAR_ATTENTION),
    # Two linear-attention layers interleaved with two full-attention ones; no DeepStack.
    tiny=QWEN3_VL.tiny.derive(
        "Qwen3_5Config",
        text={
            "num_hidden_layers": 4,
            "layer_types": [LINEAR_ATTENTION, FULL_ATTENTION, LINEAR_ATTENTION, FULL_ATTENTION],
            "linear_key_head_dim": 8,
            "linear_value_head_dim": 8,
            "linear_num_key_heads": 2,
            "linear_num_value_heads": 4,
        },
        drop_vision=("deepstack_visual_indexes",),
    ),
)
