"""The pieces of a faithfulness check that need no model (torch-free).

- `merged_values`: a map on the merged grid (one value per image token; a patch-grid map summed
  over each merge block);
- `cell_labels`: the merged cell each original-image pixel belongs to, through the processor's resize;
- `orders`: cells most to least important (the map's order), its inverse, and random orders;
- `step_counts`, `deletion_image`, `insertion_image`: the images of each step;
- `auc`: the area under a curve; `crop_box`: the zoom's crop around a map's peak.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageFilter

from ..geometry.pixels import original_to_resized


def merged_values(values: np.ndarray, grid: str, merge: int) -> np.ndarray:
    """``values`` ((rows, cols) on ``grid``: ``"patch"`` or ``"merged"``) as (rows, cols) of merged
    cells: a patch-grid map's merge blocks are summed (each block is one image token)."""
    arr = np.asarray(values, dtype=np.float64)
    if grid == "merged":
        return arr
    rows, cols = arr.shape
    if rows % merge or cols % merge:
        raise ValueError(f"a patch map of {rows}x{cols} is not divisible by the merge size {merge}")
    return arr.reshape(rows // merge, merge, cols // merge, merge).sum(axis=(1, 3))


def cell_labels(
    image_size: tuple[int, int], resized_size: tuple[int, int], cells: tuple[int, int]
) -> np.ndarray:
    """(height, width) int array: the merged cell (row-major index over ``cells`` = (rows, cols)) each
    original-image pixel falls in.

    The processor resizes the original (``image_size``, (width, height)) to ``resized_size``, whose
    merged cells are equal squares; an original pixel belongs to the cell its centre maps into
    (`lav.geometry.original_to_resized`). Every pixel is in exactly one cell.
    """
    width, height = image_size
    rows, cols = cells
    xs, _ = original_to_resized(np.arange(width) + 0.5, 0.0, resized_size, image_size)
    _, ys = original_to_resized(0.0, np.arange(height) + 0.5, resized_size, image_size)
    col = np.minimum((np.asarray(xs) * cols / resized_size[0]).astype(np.int64), cols - 1)
    row = np.minimum((np.asarray(ys) * rows / resized_size[1]).astype(np.int64), rows - 1)
    return row[:, None] * cols + col[None, :]


def map_order(values: np.ndarray) -> np.ndarray:
    """Cell indices (row-major) from the most to the least important; ties in raster order."""
    return np.argsort(-np.asarray(values, dtype=np.float64).ravel(), kind="stable")


def random_order(cells: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(cells)


def step_counts(cells: int, steps: int) -> list[int]:
    """Cells removed (or inserted) at each of ``steps + 1`` points: a fixed fraction per step."""
    return [round(k * cells / steps) for k in range(steps + 1)]


def fill_image(image: Image.Image, removal: str, cell_side: float) -> Image.Image:
    """What a removed cell shows: the image's mean colour (``mean``) or the image blurred (``blur``,
    a Gaussian of one cell's side, so no detail of a cell survives)."""
    if removal == "mean":
        mean = np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(axis=0)
        colour = tuple(int(v) for v in np.rint(mean))
        return Image.new("RGB", image.size, colour)
    return blurred(image, cell_side)


def blurred(image: Image.Image, cell_side: float) -> Image.Image:
    """The start of an insertion curve: the image under a Gaussian blur of one cell's side."""
    return image.filter(ImageFilter.GaussianBlur(radius=max(1.0, cell_side)))


def composite(
    inside: Image.Image | np.ndarray,
    outside: Image.Image | np.ndarray,
    labels: np.ndarray,
    chosen: Sequence[int],
) -> Image.Image:
    """``inside``'s pixels in the ``chosen`` cells, ``outside``'s elsewhere (exactly those pixels).
    Both are RGB images, or their (height, width, 3) uint8 arrays (a caller compositing one image
    many times converts it once)."""
    flags = np.zeros(int(labels.max()) + 1, dtype=bool)
    flags[np.asarray(chosen, dtype=np.int64)] = True
    mask = flags[labels]
    out = np.where(mask[..., None], np.asarray(inside, dtype=np.uint8), np.asarray(outside, dtype=np.uint8))
    return Image.fromarray(out, "RGB")


def auc(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Area under the curve through ``(xs, ys)`` (trapezoids; ``xs`` increasing, from 0 to 1)."""
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"a curve needs two or more points of equal length, got {x.shape} and {y.shape}")
    if np.any(np.diff(x) < 0):
        raise ValueError("a curve's x values must not decrease")
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def peak_centre(values: np.ndarray, image_size: tuple[int, int]) -> tuple[float, float]:
    """Centre, in original-image pixels, of the map's largest cell (the first in raster order on ties)."""
    arr = np.asarray(values, dtype=np.float64)
    r, c = np.unravel_index(int(np.argmax(arr)), arr.shape)
    width, height = image_size
    return (c + 0.5) * width / arr.shape[1], (r + 0.5) * height / arr.shape[0]


def crop_box(
    centre: tuple[float, float], image_size: tuple[int, int], factor: float
) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) original pixels (x1, y1 exclusive) of a crop ``1/factor`` of each side,
    centred on ``centre`` and moved inside the image where it would stick out."""
    width, height = image_size
    w = max(1, round(width / factor))
    h = max(1, round(height / factor))
    x0 = min(max(0, round(centre[0] - w / 2)), width - w)
    y0 = min(max(0, round(centre[1] - h / 2)), height - h)
    return x0, y0, x0 + w, y0 + h
