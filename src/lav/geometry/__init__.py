"""Sequence index <-> patch grid <-> merged grid <-> resized pixels <-> original pixels.

Facts this module encodes (shared/DESIGN.md, each checked in tests/geometry):
- The vision sequence is block-major: the m x m patches of one merge block are consecutive, so
  index ``s = ((t*H/m + bh)*W/m + bw)*m*m + i*m + j`` is raster row ``bh*m+i``, column ``bw*m+j``.
- Merged image tokens in the decoder are raster over (h/m, w/m).
- Qwen2.5-VL re-orders merge blocks into windows before the vision blocks run.
- The processor resizes with ``smart_resize`` to multiples of patch*merge.
"""

from __future__ import annotations

from .grid import (
    Grid,
    grid_to_sequence,
    grids_from_thw,
    patches_to_image,
    sequence_to_grids,
    split_merged_tokens,
)
from .pixels import original_to_resized, resized_to_original, smart_resize
from .windows import window_permutation

__all__ = [
    "Grid",
    "grid_to_sequence",
    "grids_from_thw",
    "original_to_resized",
    "patches_to_image",
    "resized_to_original",
    "sequence_to_grids",
    "smart_resize",
    "split_merged_tokens",
    "window_permutation",
]
