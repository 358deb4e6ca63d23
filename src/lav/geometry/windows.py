"""Qwen2.5-VL window attention: the order in which windowed vision blocks see the patches."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .grid import Grid


def window_permutation(grids: Sequence[Grid], window_size: int, patch: int) -> np.ndarray:
    """Patch-level permutation the Qwen2.5-VL vision tower applies before its blocks.

    Returns ``perm`` (S,) such that block input position ``p`` holds block-major patch ``perm[p]``
    (``hidden = patch_embed(pixel_values)[perm]``); un-permute a block's values with
    ``values[argsort(perm)]``. Windows are ``window_size`` pixels square, i.e.
    ``window_size / patch / merge`` merge blocks per side; edge windows are smaller.
    """
    perm_blocks: list[np.ndarray] = []
    offset = 0
    for g in grids:
        m = g.merge
        per_side = window_size // m // patch
        if per_side <= 0:
            raise ValueError(f"window_size {window_size} is smaller than one merge block ({m * patch} px)")
        idx = np.arange(g.tokens).reshape(g.t, g.merged_h, g.merged_w)
        nh = -(-g.merged_h // per_side)
        nw = -(-g.merged_w // per_side)
        for t in range(g.t):
            for wh in range(nh):
                for ww in range(nw):
                    win = idx[t, wh * per_side : (wh + 1) * per_side, ww * per_side : (ww + 1) * per_side]
                    perm_blocks.append(win.reshape(-1) + offset)
        offset += g.tokens
    block_perm = np.concatenate(perm_blocks) if perm_blocks else np.zeros(0, dtype=np.int64)
    m = grids[0].merge if grids else 1
    return (block_perm[:, None] * m * m + np.arange(m * m)[None, :]).reshape(-1)
