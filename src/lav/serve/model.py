"""The work of one analysis job: a `Visualizer` call with the stages reported as it goes.

Imports torch (through `lav.loading`) only when a model is loaded, so a server that only browses
saved results never imports it.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..checks import validate_request
from ..errors import ImageError, InputError
from ..inputs import DEFAULT_MAX_PIXELS, load_image
from ..result import Result


@dataclass(frozen=True)
class Request:
    """One upload, checked: an upright RGB image and the text."""

    image: Image.Image
    instruction: str
    response: str | None
    compare_base: bool


def decode_upload(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """The uploaded bytes as an upright RGB image; `ImageError` with the reason otherwise.

    The size is read from the header and checked before any pixel is decoded (a decompression bomb
    is refused without allocating it).
    """
    if not data:
        raise ImageError("the uploaded image is empty (0 bytes); choose an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageError(f"the image is a decompression bomb ({exc}); upload a real screenshot") from None
    except UnidentifiedImageError:
        raise ImageError(
            "the upload is not an image; upload a PNG, JPEG, WebP, BMP, GIF or TIFF file"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"the image is corrupt ({exc}); save it again") from None
    with image:
        return load_image(image, max_pixels=max_pixels)


class ModelWorker:
    """A loaded `Visualizer` and the analysis options of this server (layers, answer length)."""

    def __init__(self, viz: Any, analysis: dict[str, Any] | None = None) -> None:
        self.viz = viz
        self.analysis = dict(analysis or {})

    @classmethod
    def load(
        cls,
        model: str | os.PathLike,
        adapter: str | os.PathLike | None,
        load_options: dict[str, Any],
        analysis: dict[str, Any],
    ) -> ModelWorker:
        from ..loading import load

        return cls(load(model, adapter=adapter, **load_options), analysis)

    @property
    def max_pixels(self) -> int:
        return int(getattr(self.viz, "max_image_pixels", DEFAULT_MAX_PIXELS))

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.viz.model_name,
            "adapter": self.viz.adapter_name,
            "has_adapter": bool(self.viz.has_adapter),
            "family": self.viz.parts.family,
        }

    def check(self, instruction: str, response: str | None, compare_base: bool) -> None:
        """Refuse, before queueing, what the model would refuse (`InputError` -> 400)."""
        from ..checks import check_prompt_text

        validate_request(instruction, response)
        tok = self.viz.processor.tokenizer
        check_prompt_text(instruction, "instruction", tok)
        if compare_base and not self.viz.has_adapter:
            raise InputError("compare_base needs a LoRA adapter, and this server's model has none")

    def __call__(self, req: Request, report: Callable[[str], None]) -> Result:
        # Stages as the engine reaches them: preparing, generating (forward), maps; "base: ..." for
        # the pass with the adapter disabled.
        res = self.viz.analyze(
            req.image,
            req.instruction,
            response=req.response,
            compare_base=req.compare_base,
            progress=report,
            **self.analysis,
        )
        res.arrays()  # fails here, in the job, rather than on the first map request
        return res
