"""The prompt `lav eval` gives a sample, for another engine to generate the same answer from.

`prompt_for(sample, prompter, options)` returns what `lav eval` feeds its processor for ``sample``:
the chat messages, their chat-template text, the screenshot as lav reads it and the size the
processor resizes it to (the resize bounds of the preset or ``--pixels``, else the processor's own).
A `Prompter` holds what that needs of a checkpoint, read without its weights (`prompter`), so a
vLLM or sglang script builds its requests with lav's own code (``examples/vllm_generate.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image

from ..inputs import DEFAULT_MAX_PIXELS, load_image
from ..options import AnalysisOptions
from .samples import Sample

if TYPE_CHECKING:
    from ..analysis import Visualizer
    from ..presets import Preset


@dataclass(frozen=True)
class Prompter:
    """What building a prompt needs of a model: its processor, its preset (prompt defaults), the
    resize bounds (``image_pixels``: the preset's or the user's, None for the processor's own), the
    resize step (``factor`` = patch x merge, pixels) and the largest image lav reads."""

    processor: Any
    preset: Preset | None
    image_pixels: tuple[int, int] | None
    factor: int
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    model_name: str = ""

    @classmethod
    def of(cls, viz: Visualizer) -> Prompter:
        """The prompter of a loaded `Visualizer` (the one `lav eval` runs)."""
        return cls(
            viz.processor,
            viz.preset,
            viz.image_pixels,
            viz.parts.patch * viz.parts.merge,
            viz.max_image_pixels,
            viz.model_name,
        )


def prompter(
    model: str | os.PathLike,
    *,
    preset: str | Preset | None = None,
    image_pixels: tuple[int, int] | None = None,
    max_image_pixels: int = DEFAULT_MAX_PIXELS,
) -> Prompter:
    """The `Prompter` of checkpoint ``model`` (hub id, folder or ``"demo"``), read as `lav.load` reads
    it but without loading weights: config, processor and preset (``preset``/``image_pixels`` as in
    `lav.load`, ``--preset``/``--pixels`` of `lav eval`)."""
    from ..demo import assets
    from ..loading import check_pixels, read_checkpoint

    name = os.fspath(assets.model_path(model))
    config, processor, chosen = read_checkpoint(name, preset)
    pixels = check_pixels(image_pixels)
    vision = config.vision_config
    return Prompter(
        processor,
        chosen,
        pixels if pixels is not None else (chosen and chosen.image_pixels),
        int(vision.patch_size) * int(vision.spatial_merge_size),
        max_image_pixels,
        name,
    )


@dataclass(frozen=True)
class Prompt:
    """One sample's prompt as `lav eval` builds it.

    ``text``: the chat-template text, ending where the answer starts (the processor expands its one
    image pad into the image's tokens); ``messages``: the chat messages it was made from (the image
    as ``{"type": "image"}``); ``image``: the screenshot as lav reads it (upright RGB, its stored
    size: the processor resizes it); ``size``: (width, height) the processor resizes it to, pixels;
    ``pixels``: the (min_pixels, max_pixels) bounds of that resize; ``max_new_tokens``: the longest
    answer `lav eval` generates.
    """

    text: str
    messages: list[dict[str, Any]]
    image: Image.Image
    size: tuple[int, int]
    pixels: tuple[int, int]
    max_new_tokens: int


def prompt_for(
    sample: Sample, prompter: Prompter | Visualizer, options: AnalysisOptions | None = None
) -> Prompt:
    """The prompt `lav eval` gives ``sample``: ``options``' system prompt and template, else the
    preset's, the image resized into the preset's (or ``--pixels``') bounds, else the processor's.

    ``prompter``: a `Prompter` (`prompter`, no weights) or a loaded `Visualizer`. Raises
    `lav.ImageError` for an image lav cannot read (`lav eval` records it as the sample's error).
    """
    from ..geometry.pixels import smart_resize
    from ..presets import needs_size
    from ..stages import pixel_bounds, prompt_messages, prompt_text

    p = prompter if isinstance(prompter, Prompter) else Prompter.of(prompter)
    opts = (options or AnalysisOptions()).for_preset(p.preset)
    image = load_image(sample.image, max_pixels=p.max_image_pixels)
    low, high = pixel_bounds(p)  # type: ignore[arg-type]  # reads .image_pixels and .processor
    height, width = smart_resize(image.height, image.width, p.factor, low, high)
    stated = (width, height) if needs_size(opts.system, opts.template) else None
    return Prompt(
        text=prompt_text(p.processor, sample.instruction, opts.system, opts.template, stated),
        messages=prompt_messages(sample.instruction, opts.system, opts.template, stated),
        image=image,
        size=(width, height),
        pixels=(low, high),
        max_new_tokens=int(opts.max_new_tokens),  # type: ignore[arg-type]  # for_preset sets it
    )
