"""Tiny models of every supported family, for tests, examples and trying `lav` without downloads.

The way to build a tiny model of any family `lav` supports::

    from lav.testing import tiny_checkpoint
    folder = tiny_checkpoint("qwen2_5_vl", "tiny-qwen25", seed=0, text={"num_hidden_layers": 2})
    viz = lav.load(folder, device="cpu")

`tiny_checkpoint` writes a folder laid out like a hub download (config, safetensors weights,
tokenizer, processor configs, chat template) of a randomly initialised model of the *real*
transformers class, so loading it takes the same code paths as a real checkpoint, offline and in
milliseconds. The sizes come from each family's `lav.models.TinyConfig` (beside its spec in
``lav/models/<family>.py``), chosen so every structural feature of the family is present:
Qwen2.5-VL's windowed blocks, Qwen3-VL's DeepStack, MoE experts, Qwen3.5's linear-attention layers.

- `tiny_model`, `tiny_config`: the model or config in memory (``text=`` / ``vision=`` overrides);
- `build_processor`, `build_tokenizer`, `chat_template_for`: the family's real processor class with
  a character-level Qwen2 tokenizer (one token per digit, offsets per character);
- `save_checkpoint`: any model and processor as a hub-style folder that transformers 4.57 and 5 load;
- `available_families`: the families the installed transformers can build;
- the tiny vocabulary's special token ids (``IMAGE_TOKEN_ID`` = 250, ...).

Importing this module imports torch and transformers.
"""

from __future__ import annotations

from ..models.tiny import (
    IM_END_TOKEN_ID,
    IM_START_TOKEN_ID,
    IMAGE_TOKEN_ID,
    PAD_TOKEN_ID,
    VIDEO_TOKEN_ID,
    VISION_END_TOKEN_ID,
    VISION_START_TOKEN_ID,
    VOCAB_SIZE,
)
from .checkpoint import save_checkpoint, tiny_checkpoint
from .models import available_families, tiny_config, tiny_model
from .processor import TINY_MAX_PIXELS, TINY_MIN_PIXELS, build_processor
from .tokenizer import SPECIAL_TOKENS, build_tokenizer, chat_template_for

__all__ = [
    "IMAGE_TOKEN_ID",
    "IM_END_TOKEN_ID",
    "IM_START_TOKEN_ID",
    "PAD_TOKEN_ID",
    "SPECIAL_TOKENS",
    "TINY_MAX_PIXELS",
    "TINY_MIN_PIXELS",
    "VIDEO_TOKEN_ID",
    "VISION_END_TOKEN_ID",
    "VISION_START_TOKEN_ID",
    "VOCAB_SIZE",
    "available_families",
    "build_processor",
    "build_tokenizer",
    "chat_template_for",
    "save_checkpoint",
    "tiny_checkpoint",
    "tiny_config",
    "tiny_model",
]
