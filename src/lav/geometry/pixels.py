"""Resized <-> original image pixels."""

from __future__ import annotations

import math


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """The (height, width) the Qwen-VL processors resize an image to.

    Both sides become multiples of ``factor`` (patch * merge), the area is clamped to
    [min_pixels, max_pixels] and the aspect ratio is kept as closely as possible. Same rule as
    ``transformers.models.qwen2_vl.image_processing_qwen2_vl.smart_resize`` (checked in tests).
    """
    if min(height, width) <= 0:
        raise ValueError(f"image size {width}x{height} has an empty side")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(
            f"aspect ratio {max(height, width) / min(height, width):.0f}:1 is over 200:1, "
            "which the Qwen-VL processors refuse; crop the image"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def resized_to_original(
    x: float, y: float, resized: tuple[int, int], original: tuple[int, int]
) -> tuple[float, float]:
    """Map a point from resized-image pixels to original-image pixels. Sizes are (width, height)."""
    return x * original[0] / resized[0], y * original[1] / resized[1]


def original_to_resized(
    x: float, y: float, resized: tuple[int, int], original: tuple[int, int]
) -> tuple[float, float]:
    """Map a point from original-image pixels to resized-image pixels. Sizes are (width, height)."""
    return x * resized[0] / original[0], y * resized[1] / original[1]
