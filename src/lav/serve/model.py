"""The work of one analysis job: a `Visualizer` call with the stages reported as it goes.

Imports torch (through `lav.loading`) only when a model is loaded, so a server that only browses
saved results never imports it.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..checks import check_item
from ..errors import ImageError, InputError
from ..inputs import DEFAULT_MAX_PIXELS, load_image
from ..options import METHOD_INPUTS, AnalysisOptions, flag
from ..result import Result


@dataclass(frozen=True)
class Upload:
    """One upload, checked: an upright RGB image and the text."""

    image: Image.Image
    instruction: str
    response: str | None
    compare_base: bool
    #: Map methods asked for (None: the server's ``--maps``, else the default ones).
    maps: tuple[str, ...] | None = None
    #: The uploaded file as sent (compressed): the full-resolution image for a later download.
    upload: bytes | None = field(default=None, repr=False)


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


#: Options of `lav.AnalysisOptions` a request or ``lav serve`` may set; a map method that needs another
#: one (`lav.methods.MapMethod.requires`, e.g. ``focus_selected``: ``focus_heads``) is not served.
SERVED_OPTIONS = ("edge_layers", "focus_layers", "maps", "compare_base", "max_new_tokens")


def check_servable(maps: Sequence[str]) -> None:
    """Refuse (`InputError`) a map method that `lav serve` cannot run (it needs an option it does not take)."""
    if not maps:
        return
    from ..methods import unoffered

    for name, missing in unoffered(maps, SERVED_OPTIONS):
        words = " and ".join(METHOD_INPUTS[o][0] if o in METHOD_INPUTS else o for o in missing)
        flags = " ".join(f"{flag(o)} ..." for o in missing)
        raise InputError(
            f"lav serve cannot run the {name} map: it needs {words}, which lav serve does not "
            f"take; run lav run --maps {name} {flags} --out DIR and browse DIR"
        )


class ModelWorker:
    """A loaded `Visualizer` and the analysis options of this server (layers, answer length, maps).

    ``options.maps``: the server's map methods for requests that name none (None: the default
    ones); a request's own ``maps`` replace them. Either way the default maps (edge, focus) are run
    too, so the page's own view always has them. ``analysis`` may be the options' fields as a dict.
    """

    def __init__(self, viz: Any, analysis: AnalysisOptions | Mapping[str, Any] | None = None) -> None:
        self.viz = viz
        if analysis is None or isinstance(analysis, Mapping):
            analysis = AnalysisOptions(**(analysis or {}))
        self.options: AnalysisOptions = analysis
        if self.options.maps is not None:
            self._check_maps(self.options.maps)

    @property
    def analysis(self) -> dict[str, Any]:
        """The options as a dict of their fields (to build another worker from)."""
        return {f.name: getattr(self.options, f.name) for f in fields(self.options)}

    @classmethod
    def load(
        cls,
        model: str | os.PathLike,
        adapter: str | os.PathLike | None,
        load_options: dict[str, Any],
        analysis: AnalysisOptions,
    ) -> ModelWorker:
        from ..loading import load

        return cls(load(model, adapter=adapter, **load_options), analysis)

    @property
    def max_pixels(self) -> int:
        return int(getattr(self.viz, "max_image_pixels", DEFAULT_MAX_PIXELS))

    def describe(self) -> dict[str, Any]:
        from ..methods import chosen, registered, unoffered

        parts = self.viz.parts
        always = [m.name for m in chosen(None, parts)]
        return {
            "model": self.viz.model_name,
            "adapter": self.viz.adapter_name,
            "has_adapter": bool(self.viz.has_adapter),
            "family": parts.family,
            # Run for every request (``always``), what a request may add (``optional``), and what a
            # request that names no maps gets (``default``).
            "maps": {
                "always": always,
                "optional": [
                    m.name
                    for m in chosen(list(registered()))
                    if m.applies(parts) and m.name not in always and not unoffered([m.name], SERVED_OPTIONS)
                ],
                "default": self.maps_for(None),
            },
        }

    def check(
        self,
        instruction: str,
        response: str | None,
        compare_base: bool,
        maps: Sequence[str] | None = None,
    ) -> None:
        """Refuse, before queueing, what the model would refuse (`InputError` -> 400)."""
        from ..checks import check_prompt_text

        check_item(instruction, response)
        tok = self.viz.processor.tokenizer
        check_prompt_text(instruction, "instruction", tok)
        if compare_base and not self.viz.has_adapter:
            raise InputError("compare_base needs a LoRA adapter, and this server's model has none")
        if maps is not None:
            self._check_maps(maps)

    def maps_for(self, maps: Sequence[str] | None) -> list[str]:
        """The map methods a request runs: the default ones, then its ``maps`` (None: the server's)."""
        from ..methods import with_defaults

        return with_defaults(self.options.maps if maps is None else maps, self.viz.parts)

    def _check_maps(self, maps: Sequence[str]) -> None:
        from ..methods import chosen

        chosen(list(maps), self.viz.parts)  # unknown, empty, not for this model: one line naming the choice
        check_servable(maps)

    def __call__(self, req: Upload, progress: Callable[[str], None]) -> Result:
        # Stages as the engine reaches them: preparing, generating (forward), maps; "base: ..." for
        # the pass with the adapter disabled.
        options = self.options.replace(compare_base=req.compare_base, maps=tuple(self.maps_for(req.maps)))
        res = self.viz.analyze(
            req.image, req.instruction, response=req.response, progress=progress, options=options
        )
        res.arrays()  # fails here, in the job, rather than on the first map request
        return res
