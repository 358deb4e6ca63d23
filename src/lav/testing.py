"""Tiny randomly initialised Qwen-VL models of the real transformers classes.

For tests, benchmarks and trying `lav` without downloading weights. Every family that `lav`
supports has a config here that exercises its particular structure (windowed blocks, DeepStack,
MoE experts, linear-attention layers) at a size that runs in milliseconds on a CPU.
"""

from __future__ import annotations

from typing import Any

import torch
import transformers

#: Token ids shared by every tiny config (a 256-token vocabulary; the specials sit at its top).
IMAGE_TOKEN_ID = 250
VIDEO_TOKEN_ID = 251
VISION_START_TOKEN_ID = 252
VISION_END_TOKEN_ID = 253
IM_START_TOKEN_ID = 246
IM_END_TOKEN_ID = 247
PAD_TOKEN_ID = 0
VOCAB_SIZE = 256

_IDS = {
    "image_token_id": IMAGE_TOKEN_ID,
    "video_token_id": VIDEO_TOKEN_ID,
    "vision_start_token_id": VISION_START_TOKEN_ID,
    "vision_end_token_id": VISION_END_TOKEN_ID,
}

_TEXT = {
    "vocab_size": VOCAB_SIZE,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "bos_token_id": None,
    "eos_token_id": IM_END_TOKEN_ID,
    "pad_token_id": PAD_TOKEN_ID,
}


def _rope(section: list[int], **extra: Any) -> dict[str, Any]:
    rope = {"rope_type": "default", "mrope_section": section, "rope_theta": 10000.0, **extra}
    # transformers 5 reads `rope_parameters`, 4.57 reads `rope_scaling` (+ `rope_theta`).
    legacy = {k: v for k, v in rope.items() if k != "rope_theta"}
    return {"rope_parameters": rope, "rope_scaling": legacy, "rope_theta": 10000.0}


def _family_configs() -> dict[str, tuple[str, dict[str, Any], dict[str, Any]]]:
    return {
        "qwen2_vl": (
            "Qwen2VLConfig",
            {**_TEXT, "head_dim": 16, **_rope([2, 3, 3], type="mrope")},
            {
                "depth": 3,
                "embed_dim": 64,
                "hidden_size": 64,
                "num_heads": 4,
                "mlp_ratio": 2,
                "patch_size": 14,
            },
        ),
        "qwen2_5_vl": (
            "Qwen2_5_VLConfig",
            {**_TEXT, "head_dim": 16, **_rope([2, 3, 3], type="mrope")},
            {
                "depth": 4,
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_heads": 4,
                "out_hidden_size": 64,
                "patch_size": 14,
                # 56 px windows = 2x2 merge blocks: small grids already have several windows.
                "window_size": 56,
                "fullatt_block_indexes": [1, 3],
            },
        ),
        "qwen3_vl": (
            "Qwen3VLConfig",
            {**_TEXT, "head_dim": 16, **_rope([2, 3, 3], mrope_interleaved=True)},
            {
                "depth": 3,
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_heads": 4,
                "out_hidden_size": 64,
                "num_position_embeddings": 64,
                "deepstack_visual_indexes": [0, 1],
            },
        ),
        "qwen3_vl_moe": (
            "Qwen3VLMoeConfig",
            {
                **_TEXT,
                "head_dim": 16,
                "num_experts": 4,
                "num_experts_per_tok": 2,
                "moe_intermediate_size": 32,
                **_rope([2, 3, 3], mrope_interleaved=True),
            },
            {
                "depth": 3,
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_heads": 4,
                "out_hidden_size": 64,
                "num_position_embeddings": 64,
                "deepstack_visual_indexes": [1],
            },
        ),
        "qwen3_5": (
            "Qwen3_5Config",
            {
                **_TEXT,
                "num_hidden_layers": 4,
                "head_dim": 16,
                "layer_types": ["linear_attention", "full_attention", "linear_attention", "full_attention"],
                "linear_key_head_dim": 8,
                "linear_value_head_dim": 8,
                "linear_num_key_heads": 2,
                "linear_num_value_heads": 4,
                **_rope([2, 3, 3], mrope_interleaved=True),
            },
            {
                "depth": 3,
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_heads": 4,
                "out_hidden_size": 64,
                "num_position_embeddings": 64,
            },
        ),
        "qwen3_5_moe": (
            "Qwen3_5MoeConfig",
            {
                **_TEXT,
                "num_hidden_layers": 4,
                "head_dim": 16,
                "layer_types": ["linear_attention", "full_attention", "linear_attention", "full_attention"],
                "linear_key_head_dim": 8,
                "linear_value_head_dim": 8,
                "linear_num_key_heads": 2,
                "linear_num_value_heads": 4,
                "num_experts": 4,
                "num_experts_per_tok": 2,
                "moe_intermediate_size": 32,
                "shared_expert_intermediate_size": 32,
                **_rope([2, 3, 3], mrope_interleaved=True),
            },
            {
                "depth": 3,
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_heads": 4,
                "out_hidden_size": 64,
                "num_position_embeddings": 64,
            },
        ),
    }


def available_families() -> list[str]:
    """Families whose config classes exist in the installed transformers."""
    return [name for name, (cls, _, _) in _family_configs().items() if hasattr(transformers, cls)]


def tiny_config(family: str, *, text: dict[str, Any] | None = None, vision: dict[str, Any] | None = None):
    """A tiny config of ``family`` (e.g. ``"qwen3_vl"``), with optional overrides of the sub-configs."""
    configs = _family_configs()
    if family not in configs:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(configs)}")
    cls_name, text_kw, vision_kw = configs[family]
    cls = getattr(transformers, cls_name, None)
    if cls is None:
        raise ValueError(f"{cls_name} is not in transformers {transformers.__version__}")
    text_kw = {**text_kw, **(text or {})}
    vision_kw = {**vision_kw, **(vision or {})}
    return cls(text_config=text_kw, vision_config=vision_kw, **_IDS)


def tiny_model(family: str, seed: int = 0, attn_implementation: str = "sdpa", **overrides: Any):
    """A randomly initialised ``*ForConditionalGeneration`` of ``family`` in eval mode (float32)."""
    config = tiny_config(family, **overrides)
    config._attn_implementation = attn_implementation
    torch.manual_seed(seed)
    model = transformers.AutoModelForImageTextToText.from_config(
        config, attn_implementation=attn_implementation
    )
    return model.eval()


def image_inputs(
    config, grids: list[tuple[int, int, int]], text_before: int = 3, text_after: int = 4, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Model inputs for images of the given patch grids ``(t, h, w)``, without a processor.

    Random ``pixel_values`` and a prompt of random text tokens around each image's
    ``<vision_start> <image>*n <vision_end>`` span. Returns ``input_ids``, ``attention_mask``,
    ``pixel_values``, ``image_grid_thw`` and ``mm_token_type_ids`` (1 on image tokens).
    """
    vcfg = config.vision_config
    merge = vcfg.spatial_merge_size
    dim = vcfg.in_channels * vcfg.temporal_patch_size * vcfg.patch_size**2
    gen = torch.Generator().manual_seed(seed)
    ids: list[int] = []
    for t, h, w in grids:
        ids += torch.randint(1, 200, (text_before,), generator=gen).tolist()
        ids += [VISION_START_TOKEN_ID] + [IMAGE_TOKEN_ID] * (t * h * w // merge**2) + [VISION_END_TOKEN_ID]
    ids += torch.randint(1, 200, (text_after,), generator=gen).tolist()
    input_ids = torch.tensor([ids])
    n = sum(t * h * w for t, h, w in grids)
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "pixel_values": torch.randn(n, dim, generator=gen),
        "image_grid_thw": torch.tensor(grids),
        "mm_token_type_ids": (input_ids == IMAGE_TOKEN_ID).long(),
    }
