"""A live model seen through its family's spec: vision blocks, decoder layers and geometry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from ..errors import InputError, UnsupportedModelError
from .registry import spec_for_config
from .spec import ATTENTION_KINDS, FULL_ATTENTION, ModelSpec, find_attention_modules, unwrap

LayerSelection = int | Sequence[int] | str | None


@dataclass(frozen=True)
class ModelParts:
    """Where a live model keeps what `lav` reads, with the geometry its vision tower uses."""

    spec: ModelSpec
    vision_attention: tuple[nn.Module, ...]
    #: Decoder attention modules of the layers with an attention map (full or indexed), in order.
    decoder_attention: tuple[nn.Module, ...]
    #: Index of each of those among all decoder layers (differs from its position for Qwen3.5).
    decoder_layer_ids: tuple[int, ...]
    patch: int
    merge: int
    temporal: int
    image_token_id: int
    #: Qwen2.5-VL: window size in pixels and the blocks that attend over the whole image.
    window_size: int | None
    full_attention_blocks: tuple[int, ...]
    num_decoder_layers: int
    #: Kind of each of those layers (``full_attention``, or ``indexed_attention`` for Qwen4-Exp).
    decoder_layer_kinds: tuple[str, ...] = ()

    @property
    def family(self) -> str:
        return self.spec.family

    def is_windowed(self, block: int) -> bool:
        return self.spec.windowed and block not in self.full_attention_blocks

    @property
    def windowed_blocks(self) -> tuple[int, ...]:
        return tuple(b for b in range(len(self.vision_attention)) if self.is_windowed(b))


def _check_text(spec: ModelSpec, text_config) -> list[str]:
    layer_types = list(getattr(text_config, "layer_types", None) or [])
    unknown = sorted({t for t in layer_types if t not in spec.layer_kinds})
    if unknown:
        raise UnsupportedModelError(
            f"decoder layer types {unknown} are not checked for {spec.family} "
            f"(known: {list(spec.layer_kinds)}); lav will not draw a map it cannot vouch for"
        )
    if getattr(text_config, "use_sliding_window", False):
        raise UnsupportedModelError(
            "this checkpoint enables sliding-window attention in the decoder, which lav has not checked; "
            "set use_sliding_window=False in its config (Qwen-VL releases ship it off)"
        )
    return layer_types


def inspect_model(model: nn.Module) -> ModelParts:
    """Bind a (possibly PEFT-wrapped) model to its family spec and check everything we rely on."""
    base = unwrap(model)
    config = base.config
    spec = spec_for_config(config)
    vision_config = getattr(config, "vision_config", None)
    text_config = getattr(config, "text_config", None) or config
    if vision_config is None:
        raise UnsupportedModelError(
            f"{spec.family} config has no vision_config; is this a text-only checkpoint?"
        )
    layer_types = _check_text(spec, text_config)

    vision = find_attention_modules(base, spec.vision_attention)
    decoder = find_attention_modules(base, spec.text_attention)
    depth = int(getattr(vision_config, "depth", len(vision)))
    if len(vision) != depth:
        raise UnsupportedModelError(
            f"found {len(vision)} vision attention modules, the config says depth={depth}; "
            "the model layout is not the one lav knows"
        )
    n_layers = int(text_config.num_hidden_layers)
    kinds = layer_types or [FULL_ATTENTION] * n_layers
    full_ids = [i for i, kind in enumerate(kinds) if kind in ATTENTION_KINDS]
    layer_ids = [getattr(m, "layer_idx", None) for m in decoder]
    if len(decoder) != len(full_ids) or (None not in layer_ids and layer_ids != full_ids):
        raise UnsupportedModelError(
            f"found decoder attention in layers {layer_ids}, the config says {full_ids}; "
            "the model layout is not the one lav knows"
        )

    patch = vision_config.patch_size
    temporal = vision_config.temporal_patch_size
    if not isinstance(patch, int) or not isinstance(temporal, int):
        raise UnsupportedModelError(
            f"non-square patch_size {patch!r} / temporal_patch_size {temporal!r} is not supported"
        )
    full_blocks: tuple[int, ...] = ()
    window_size = None
    if spec.windowed:
        window_size = int(vision_config.window_size)
        full_blocks = tuple(int(b) for b in vision_config.fullatt_block_indexes)
    return ModelParts(
        spec=spec,
        vision_attention=tuple(vision),
        decoder_attention=tuple(decoder),
        decoder_layer_ids=tuple(full_ids),
        patch=int(patch),
        merge=int(vision_config.spatial_merge_size),
        temporal=int(temporal),
        image_token_id=int(config.image_token_id),
        window_size=window_size,
        full_attention_blocks=full_blocks,
        num_decoder_layers=n_layers,
        decoder_layer_kinds=tuple(kinds[i] for i in full_ids),
    )


@dataclass(frozen=True)
class AttentionSizes:
    """The attention shapes of a model, read from its config alone (no weights): what `lav plan`
    sizes capture's memory with (`lav.capture.memory`)."""

    patch: int  # vision patch side, pixels
    merge: int  # patches per merged token, per side
    vision_heads: int
    vision_head_dim: int
    text_heads: int  # query heads of a decoder layer
    text_kv_heads: int
    text_head_dim: int


def attention_sizes(config) -> AttentionSizes:
    """The `AttentionSizes` of a supported family's ``config``, each read where that family keeps it."""
    spec = spec_for_config(config)
    vision = getattr(config, "vision_config", None)
    if vision is None:
        raise UnsupportedModelError(
            f"{spec.family} config has no vision_config; is this a text-only checkpoint?"
        )
    text = getattr(config, "text_config", None) or config
    heads = int(vision.num_heads)
    text_heads = int(text.num_attention_heads)
    return AttentionSizes(
        patch=int(vision.patch_size),
        merge=int(vision.spatial_merge_size),
        vision_heads=heads,
        vision_head_dim=int(getattr(vision, spec.vision_width)) // heads,
        text_heads=text_heads,
        text_kv_heads=int(getattr(text, "num_key_value_heads", None) or text_heads),
        # Qwen2-VL and Qwen2.5-VL configs leave head_dim out: the decoder splits its width evenly.
        text_head_dim=int(getattr(text, "head_dim", None) or text.hidden_size // text_heads),
    )


def resolve_layers(selection: LayerSelection, count: int, what: str) -> tuple[int, ...]:
    """Normalise a layer selection (an index, a list, negative indices, ``"all"``) to sorted indices.

    ``count`` is how many layers there are to choose from; ``what`` names them in errors
    ("vision blocks", "full-attention decoder layers").
    """
    if selection is None or (isinstance(selection, str) and selection == "all"):
        return tuple(range(count))
    if isinstance(selection, str):
        try:
            selection = [int(s) for s in selection.replace(",", " ").split()]
        except ValueError:
            raise InputError(f"layer selection {selection!r} is not 'all' or a list of integers") from None
    items = [selection] if isinstance(selection, int) else list(selection)
    if not items:
        raise InputError(f"empty selection of {what}; give at least one index or 'all'")
    out = set()
    for i in items:
        if not -count <= int(i) < count:
            raise InputError(
                f"index {i} is out of range: the model has {count} {what} (0..{count - 1}, or -1..-{count})"
            )
        out.add(int(i) % count)
    return tuple(sorted(out))
