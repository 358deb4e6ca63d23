"""The real processor class of a family, configured as its checkpoints are (`ProcessorSettings`)."""

from __future__ import annotations

import transformers

from ..errors import InputError
from .models import available_families, family_spec
from .tokenizer import build_tokenizer, chat_template_for

#: Pixel limits of the tiny processors: a few dozen image tokens, so tiny models stay fast.
TINY_MIN_PIXELS = 32 * 32 * 4
TINY_MAX_PIXELS = 448 * 448


def _image_processor_class(name: str) -> type:
    # transformers 5 made the torchvision processor the plain name (the PIL one is `...Pil`);
    # 4.57 calls it `...Fast` and keeps a PIL/numpy one under the plain name.
    if hasattr(transformers, name + "Pil"):
        return getattr(transformers, name)
    return getattr(transformers, name + "Fast")


def build_processor(
    family: str,
    tokenizer: transformers.PreTrainedTokenizerBase | None = None,
    min_pixels: int = TINY_MIN_PIXELS,
    max_pixels: int = TINY_MAX_PIXELS,
) -> transformers.ProcessorMixin:
    """The real processor class of ``family`` with its real image and video processors.

    Patch size from the family's `ProcessorSettings` (16 for Qwen3-VL and Qwen3.5, 14 for Qwen2-VL
    and Qwen2.5-VL), merge 2, temporal patch 2, and the family's normalisation; images are resized
    into ``[min_pixels, max_pixels]`` (pixels of the resized image). ``tokenizer`` defaults to
    `build_tokenizer` with the family's chat template.
    """
    settings = family_spec(family).processor
    if settings is None:
        raise InputError(f"{family} has no processor settings")
    processor_cls = getattr(transformers, settings.processor, None)
    if processor_cls is None:
        raise InputError(
            f"{settings.processor} is not in transformers {transformers.__version__}; "
            f"pick a family it has: {', '.join(available_families())}."
        )
    if not 0 < min_pixels <= max_pixels:
        raise InputError(f"need 0 < min_pixels <= max_pixels, got {min_pixels} and {max_pixels}.")
    template = chat_template_for(settings.default_system)
    if tokenizer is None:
        tokenizer = build_tokenizer(template)
    geometry = {"patch_size": settings.patch_size, "temporal_patch_size": 2, "merge_size": 2}
    norm = {"image_mean": list(settings.image_mean), "image_std": list(settings.image_std)}
    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    image_processor = _image_processor_class(settings.image_processor)(size=size, **geometry, **norm)
    video_processor = getattr(transformers, settings.video_processor)(size=size, **geometry, **norm)
    return processor_cls(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=template,
    )
