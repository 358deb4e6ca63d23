"""The shape every family's tiny test config shares, and the record that holds one.

A family module (`qwen3_vl.py`, ...) keeps its `TinyConfig` beside its spec; `lav.testing` builds
randomly initialised models of the real transformers classes from it. The sizes are chosen so that
a forward runs in milliseconds on a CPU while every structural feature of the family is present
(windowed blocks, DeepStack, MoE experts, linear-attention layers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

#: Token ids shared by every tiny config (a 256-token vocabulary; the specials sit at its top).
IMAGE_TOKEN_ID = 250
VIDEO_TOKEN_ID = 251
VISION_START_TOKEN_ID = 252
VISION_END_TOKEN_ID = 253
IM_START_TOKEN_ID = 246
IM_END_TOKEN_ID = 247
PAD_TOKEN_ID = 0
VOCAB_SIZE = 256

#: Top-level config keys of every tiny model (the vision token ids the processor also uses).
TOKEN_IDS: Mapping[str, int] = MappingProxyType(
    {
        "image_token_id": IMAGE_TOKEN_ID,
        "video_token_id": VIDEO_TOKEN_ID,
        "vision_start_token_id": VISION_START_TOKEN_ID,
        "vision_end_token_id": VISION_END_TOKEN_ID,
    }
)

#: The decoder every tiny config starts from: 3 layers of width 64, 4 query heads over 2 KV heads.
TEXT: Mapping[str, Any] = MappingProxyType(
    {
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
)


def rope(section: list[int], **extra: Any) -> dict[str, Any]:
    """Text-config keys of an M-RoPE with ``mrope_section`` = ``section`` (rotary pairs per t, h, w)."""
    params = {"rope_type": "default", "mrope_section": section, "rope_theta": 10000.0, **extra}
    # transformers 5 reads `rope_parameters`, 4.57 reads `rope_scaling` (+ `rope_theta`).
    legacy = {k: v for k, v in params.items() if k != "rope_theta"}
    return {"rope_parameters": params, "rope_scaling": legacy, "rope_theta": 10000.0}


@dataclass(frozen=True)
class TinyConfig:
    """A tiny config of one family: the transformers config class and its sub-config keywords.

    The model is ``getattr(transformers, config_class)(text_config=text, vision_config=vision,
    **TOKEN_IDS)``; `lav.testing.tiny_config` builds it, with the caller's overrides on top.
    """

    config_class: str
    text: Mapping[str, Any]
    vision: Mapping[str, Any]

    def __post_init__(self) -> None:
        # Read-only views: a caller's overrides must never leak into the next family's model.
        object.__setattr__(self, "text", MappingProxyType(dict(self.text)))
        object.__setattr__(self, "vision", MappingProxyType(dict(self.vision)))

    def derive(
        self,
        config_class: str,
        *,
        text: Mapping[str, Any] | None = None,
        vision: Mapping[str, Any] | None = None,
        drop_vision: Iterable[str] = (),
    ) -> TinyConfig:
        """Another family's tiny config as its difference from this one: keys set or replaced in
        ``text`` / ``vision``, vision keys that the other family's tower does not have dropped."""
        dropped = set(drop_vision)
        return TinyConfig(
            config_class,
            {**self.text, **(text or {})},
            {**{k: v for k, v in self.vision.items() if k not in dropped}, **(vision or {})},
        )
