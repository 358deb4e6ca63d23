"""The private transformers fields capture still needs, in one place, with the releases they hold for.

Checked on transformers 4.57.6 and 5.24 (the oldest and newest we test).
"""

from __future__ import annotations

from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, AttentionInterface

__all__ = [
    "ALL_ATTENTION_FUNCTIONS",
    "ALL_MASK_ATTENTION_FUNCTIONS",
    "get_attn_implementation",
    "register_attention",
    "set_attn_implementation",
    "unregister_attention",
]


def get_attn_implementation(config) -> str | None:
    """The attention backend a (sub-)config selects (`PretrainedConfig._attn_implementation`, 4.36+)."""
    return config._attn_implementation


def set_attn_implementation(config, name: str | None) -> None:
    """Point one (sub-)config at ``name`` without validation or hub look-ups.

    `PreTrainedModel.set_attn_implementation` (4.56+) validates against the installed kernels and
    walks every sub-model; capture must switch exactly the configs of the modules it records and
    put back exactly what was there, so it writes ``_attn_implementation_internal`` (4.48+, 5.x).
    """
    config._attn_implementation_internal = name


def saved_attn_implementation(config) -> str | None:
    """What `set_attn_implementation` must put back (the raw field, None included)."""
    return config._attn_implementation_internal


def register_attention(name: str, attention, mask) -> None:
    """Register an attention function and its mask function under ``name`` (public API, 4.48+)."""
    AttentionInterface.register(name, attention)
    AttentionMaskInterface.register(name, mask)


def unregister_attention(name: str) -> None:
    """Remove ``name`` from both registries: they have no public removal (``_global_mapping``, 4.48+)."""
    AttentionInterface._global_mapping.pop(name, None)
    AttentionMaskInterface._global_mapping.pop(name, None)
