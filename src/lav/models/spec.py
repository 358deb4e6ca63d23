"""The shape of a model family's spec, and how a spec finds its parts in a live model."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from torch import nn

from ..coords.convert import ABSOLUTE_RESIZED, RELATIVE_1000  # noqa: F401  (re-exported for families)
from ..errors import UnsupportedModelError
from .tiny import TinyConfig

#: Decoder layer kinds whose attention we can record, and those that have no attention map.
FULL_ATTENTION = "full_attention"
LINEAR_ATTENTION = "linear_attention"
#: Qwen4-Exp (transformers 5.24): softmax attention over the keys a QSA indexer selected per query;
#: the selection is folded into the 4-D mask before the attention function is called.
INDEXED_ATTENTION = "indexed_attention"
#: The kinds that have an attention map: focus layer indices count these layers only.
ATTENTION_KINDS = (FULL_ATTENTION, INDEXED_ATTENTION)


@dataclass(frozen=True)
class ProcessorSettings:
    """What a family's processor is built from: the values of the real checkpoints' configs."""

    #: transformers class names of the processor and its image and video processors (the image
    #: processor's torchvision variant, named ``...Fast`` in transformers 4.57).
    processor: str
    image_processor: str
    video_processor: str
    #: Vision patch side in pixels (merge 2 and temporal patch 2 for every family).
    patch_size: int
    #: Per-channel normalisation of pixel values in [0, 1] (RGB).
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    #: System turn the chat template adds when a conversation has none (None: no default turn).
    default_system: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """What `lav` must know about one Qwen-VL family. Nothing family-specific lives outside `models/`.

    Attention classes are named here as a fallback for releases whose models do not list them in
    ``_can_record_outputs["attentions"]`` (transformers 4.57's Qwen2-VL and Qwen2.5-VL); where the
    model lists them, that list is used and must agree.
    """

    family: str
    model_types: tuple[str, ...]
    vision_attention: tuple[str, ...]
    text_attention: tuple[str, ...]
    coords: str
    #: Qwen2.5-VL re-orders patches into windows for every block not in ``fullatt_block_indexes``.
    windowed: bool = False
    #: Decoder layer kinds this family may have (``text_config.layer_types``); others raise.
    layer_kinds: tuple[str, ...] = (FULL_ATTENTION,)
    #: The ``vision_config`` field that holds the vision blocks' width (heads x head size).
    vision_width: str = "hidden_size"
    #: The family's name as its authors write it ("Qwen2.5-VL"), for messages.
    title: str = ""
    #: How the family's processor is configured (`lav.testing.build_processor`).
    processor: ProcessorSettings | None = None
    #: A tiny config of the family for tests and examples (`lav.testing.tiny_model`).
    tiny: TinyConfig | None = field(default=None, compare=False, repr=False)

    def derive(self, **changes) -> ModelSpec:
        """A new family as its difference from this one (Qwen2.5-VL = Qwen2-VL + windows)."""
        return replace(self, **changes)


def unwrap(model: nn.Module) -> nn.Module:
    """The transformers model under a PEFT wrapper (``PeftModel.get_base_model()``), or the model itself."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _recorded_attention_classes(model: nn.Module) -> set[type]:
    classes: set[type] = set()
    for module in model.modules():
        recordable = getattr(type(module), "_can_record_outputs", None) or {}
        target = recordable.get("attentions")
        if target is not None:
            classes.add(getattr(target, "target_class", target))
    return classes


def find_attention_modules(model: nn.Module, class_names: Iterable[str]) -> list[nn.Module]:
    """Attention modules of the given classes in module-tree order (= block / layer order).

    Walks the real module tree, so it finds them under a PeftModel and whatever the attribute
    names of the release are. The spec's class names are checked against the model's own
    ``_can_record_outputs`` in tests; 4.57's Qwen2-VL and Qwen2.5-VL do not list theirs.
    """
    wanted = set(class_names)
    base = unwrap(model)
    found = [m for m in base.modules() if type(m).__name__ in wanted]
    if not found:
        listed = sorted(c.__name__ for c in _recorded_attention_classes(base))
        raise UnsupportedModelError(
            f"no attention module of {sorted(wanted)} in this model (it records attention in {listed}); "
            "lav does not know this model layout yet: please report the transformers version"
        )
    return found
