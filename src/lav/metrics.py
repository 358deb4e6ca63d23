"""Does a click or a map find the target? Shared by evaluation, demo training and the benches.

Plain numpy (no torch), so a saved `Result` can be scored without loading a model.

Conventions:
- a box is ``(x1, y1, x2, y2)`` in original-image pixels, x right, y down; reversed corners are
  put in order; its edges belong to it (a point on an edge is inside);
- ``image_size`` is ``(width, height)`` in original-image pixels;
- a map is ``(grid_h, grid_w)`` on a grid of equal cells covering the whole image (the edge map's
  patch grid, the focus map's merged grid), so cell ``(r, c)`` spans
  ``[c*W/grid_w, (c+1)*W/grid_w] x [r*H/grid_h, (r+1)*H/grid_h]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Box = Sequence[float]


def _ordered(box: Box) -> tuple[float, float, float, float]:
    if len(box) != 4:
        raise ValueError(f"a box is (x1, y1, x2, y2), got {box!r}")
    x1, y1, x2, y2 = (float(v) for v in box)
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def _size(image_size: Sequence[float]) -> tuple[float, float]:
    width, height = (float(v) for v in image_size)
    if not (width > 0 and height > 0):
        raise ValueError(f"image_size must be (width, height) with both sides positive, got {image_size!r}")
    return width, height


def _grid_map(map_: np.ndarray) -> np.ndarray:
    arr = np.asarray(map_, dtype=np.float64)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"a map is (grid_h, grid_w), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("the map has NaN or infinite values; score only finite maps")
    return arr


def point_in_box(x: float, y: float, box: Box) -> bool:
    """Is the point ``(x, y)`` inside ``box`` (edges included)?"""
    x1, y1, x2, y2 = _ordered(box)
    return x1 <= x <= x2 and y1 <= y <= y2


def cell_coverage(box: Box, grid_shape: tuple[int, int], image_size: Sequence[float]) -> np.ndarray:
    """``(grid_h, grid_w)`` float64 in [0, 1]: the share of each cell's area that lies inside ``box``.

    Cells whose edge only touches the box get 0. Where the cell size is a whole number of pixels
    and the box has integer corners, the shares are exact multiples of 1/cell_area.
    """
    grid_h, grid_w = (int(v) for v in grid_shape)
    width, height = _size(image_size)
    x1, y1, x2, y2 = _ordered(box)

    def along(lo: float, hi: float, cells: int, extent: float) -> np.ndarray:
        edges = np.arange(cells + 1) * extent / cells  # exact when extent / cells is a whole number
        overlap = np.minimum(hi, edges[1:]) - np.maximum(lo, edges[:-1])
        return np.clip(overlap, 0.0, None) / (edges[1:] - edges[:-1])

    return np.outer(along(y1, y2, grid_h, height), along(x1, x2, grid_w, width))


def pointing_game(map_: np.ndarray, box: Box, image_size: Sequence[float]) -> bool:
    """Does the map's maximum point into ``box``?

    The *centre* of the maximum cell (the first in raster order on ties), in original-image pixels,
    must lie in the box, edges included. The centre, not the cell's extent: a cell that only grazes
    the box does not count as a hit, so a coarse grid gains no free hits near the box.
    """
    arr = _grid_map(map_)
    width, height = _size(image_size)
    r, c = np.unravel_index(int(np.argmax(arr)), arr.shape)
    x = (c + 0.5) * width / arr.shape[1]
    y = (r + 0.5) * height / arr.shape[0]
    return point_in_box(x, y, box)


def mass_in_box(map_: np.ndarray, box: Box, image_size: Sequence[float]) -> float:
    """Share of the map's mass inside ``box``, in [0, 1]: ``sum(m * coverage) / sum(m)``.

    ``m`` is the map with negative values set to 0 (a difference map's losses are not mass);
    ``coverage`` is `cell_coverage`, so a cell half inside the box brings half its value. NaN for
    a map without positive mass (an all-zero map has no share to give).
    """
    arr = np.clip(_grid_map(map_), 0.0, None)
    total = float(arr.sum())
    if total <= 0.0:
        return math.nan
    return float((arr * cell_coverage(box, arr.shape, image_size)).sum() / total)


def chance_level(box: Box, image_size: Sequence[float]) -> float:
    """Box area / image area, after clipping the box to the image: the hit rate of a click drawn
    uniformly over the image (the baseline of `point_in_box` and, roughly, of `pointing_game`)."""
    width, height = _size(image_size)
    x1, y1, x2, y2 = _ordered(box)
    w = max(0.0, min(x2, width) - max(x1, 0.0))
    h = max(0.0, min(y2, height) - max(y1, 0.0))
    return w * h / (width * height)


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` of a rate of ``k`` hits in ``n`` trials.

    ``z`` = 1.96 gives 95%. Unlike the normal approximation it stays inside [0, 1] and is not empty
    at 0 or n hits. ``n`` = 0 gives ``(0.0, 1.0)``: no evidence either way.
    """
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
