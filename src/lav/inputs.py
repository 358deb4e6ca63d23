"""Images in, as the Qwen-VL processors expect them: upright 8-bit RGB, checked before decoding.

`load_image` turns a file or a PIL image into what ``qwen-vl-utils`` hands the processor (RGB, any
transparency laid on white), with the problems people meet in practice named in one sentence each:
a wrong path, an empty or truncated file, a decompression bomb, an EXIF-rotated phone photo, a
16-bit medical or scientific grayscale.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import ImageError, InputError
from .files import check_path, reading

#: Largest image (width x height, in pixels of the file) `load_image` decodes unless told otherwise:
#: a 8000x8000 screenshot, 192 MB as RGB; Pillow's own bomb limit is ~89 M.
DEFAULT_MAX_PIXELS = 64_000_000
#: Widest aspect ratio (long side / short side) the Qwen-VL processors accept (`smart_resize`).
MAX_ASPECT_RATIO = 200

# Pillow keeps its truncation and bomb switches in module globals; `_pillow` changes them only under
# this lock and restores them before releasing it, so concurrent loads restore the caller's values.
_PILLOW_SETTINGS = threading.Lock()

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def load_image(
    source: str | os.PathLike[str] | Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """An upright RGB copy of ``source``, ready for a Qwen-VL processor.

    ``source`` is a path or a PIL image (never modified). The size is read from the file's header
    and checked against ``max_pixels`` before any pixel is decoded. The EXIF orientation is applied;
    transparency (RGBA, LA, P or L with a transparent colour) is composited on white; CMYK and 1-bit
    are converted; 16-bit grayscale is scaled by 255/65535; 32-bit ``"I"`` by the smallest of the
    8-bit or 16-bit ranges that holds its values (else its min..max) and ``"F"`` by 0..1, 0..255 or
    its min..max likewise. Raises `ImageError` naming the problem and the fix.
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise InputError(
            f"max_pixels must be positive, got {max_pixels!r}; pass the largest width x height to accept."
        )
    if isinstance(source, Image.Image):
        return _prepare(source, "the image", max_pixels)
    if isinstance(source, (str, os.PathLike)) and os.fsdecode(source).startswith(("http://", "https://")):
        raise ImageError(
            f"{os.fsdecode(source)} is a URL; lav reads local files only, so download the image and pass its path."
        )
    if not isinstance(source, (str, os.PathLike)):
        raise ImageError(
            f"expected an image path or a PIL image, got {type(source).__name__}; "
            "pass a file path or a PIL.Image.Image."
        )
    path = check_path(source, "image file", error=ImageError)
    with reading(path, "image file", "check that it is readable", error=ImageError):
        if path.stat().st_size == 0:
            raise ImageError(f"image file {path} is empty (0 bytes); save or download the image again.")
        try:
            # Pillow's bomb check would refuse a large header before we can name `max_pixels`; our
            # own check below replaces it, still before decoding.
            with _pillow(MAX_IMAGE_PIXELS=None):
                image = Image.open(path)
        except UnidentifiedImageError:
            raise ImageError(
                f"{path} is not an image Pillow can read; pass a PNG, JPEG, WebP, BMP, GIF or TIFF file."
            ) from None
    with image:
        return _prepare(image, f"image file {path}", max_pixels)


def describe(image: Image.Image) -> str:
    """Size and mode in a few words, e.g. ``"1920x1080 RGB"``."""
    return f"{image.width}x{image.height} {image.mode}"


def _prepare(image: Image.Image, name: str, max_pixels: int) -> Image.Image:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError(f"{name} has zero size ({width}x{height}); pass an image with at least one pixel.")
    if width * height > max_pixels:
        raise ImageError(
            f"{name} is {width}x{height} = {width * height:,} pixels, more than max_pixels={max_pixels:,}; "
            "downscale it, or if you trust the file pass a larger max_pixels=... (--max-pixels on the command line)."
        )
    ratio = max(width, height) / min(width, height)
    if ratio > MAX_ASPECT_RATIO:
        raise ImageError(
            f"{name} is {width}x{height}, an aspect ratio of {ratio:.0f}:1; the Qwen-VL processors accept at "
            f"most {MAX_ASPECT_RATIO}:1, so crop or pad it closer to the screen's shape."
        )
    try:
        # A truncated file must fail here rather than decode its missing rows as gray.
        with _pillow(LOAD_TRUNCATED_IMAGES=False):
            image.load()
        upright = ImageOps.exif_transpose(image)  # a copy: the caller's image keeps its pixels and EXIF
    except MemoryError:
        raise
    except Exception as e:  # Pillow's decoders raise OSError, SyntaxError, ValueError, EOFError, zlib.error
        raise ImageError(f"{name} is truncated or corrupt ({e}); save or download the image again.") from e
    return _to_rgb(upright)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in (*_SIXTEEN_BIT, "I", "F"):
        return Image.fromarray(_gray_to_8bit(image)).convert("RGB")
    if image.mode == "La":  # premultiplied; Pillow converts it to LA only
        image = image.convert("LA")
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as e:
        raise ImageError(
            f"image mode {image.mode} cannot be converted to RGB ({e}); save the image as an RGB PNG or JPEG."
        ) from e


def _has_alpha(image: Image.Image) -> bool:
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        return True
    # A palette can carry alpha itself (e.g. from Image.quantize of an RGBA image).
    return image.mode == "P" and image.palette is not None and image.palette.mode == "RGBA"


def _gray_to_8bit(image: Image.Image) -> np.ndarray:
    """(height, width) uint8 from a 16- or 32-bit grayscale image, scaled from its nominal range."""
    values = np.asarray(image).astype(np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    if image.mode in _SIXTEEN_BIT:
        top = 65535.0
    elif low >= 0 and high <= 1 and image.mode == "F":
        top = 1.0
    elif low >= 0 and high <= 255:
        top = 255.0
    elif low >= 0 and high <= 65535 and image.mode == "I":
        top = 65535.0
    else:
        # No nominal range fits (negative values, floats beyond 255): stretch what is there.
        values, top = values - low, max(high - low, 1e-12)
    return np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)


@contextmanager
def _pillow(**settings: object) -> Iterator[None]:
    """Set Pillow globals (``MAX_IMAGE_PIXELS``, ``LOAD_TRUNCATED_IMAGES``) for one call, then restore."""
    modules = {"MAX_IMAGE_PIXELS": Image, "LOAD_TRUNCATED_IMAGES": ImageFile}
    with _PILLOW_SETTINGS:
        saved = {key: getattr(modules[key], key) for key in settings}
        for key, value in settings.items():
            setattr(modules[key], key, value)
        try:
            yield
        finally:
            for key, value in saved.items():
                setattr(modules[key], key, value)
