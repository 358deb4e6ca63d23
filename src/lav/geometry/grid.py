"""Block-major vision sequences and raster patch grids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Grid:
    """One image's patch grid, as ``image_grid_thw`` gives it.

    ``t, h, w`` are in patches (``t`` temporal patches: 1 for a still image), ``merge`` is the
    spatial merge size. The decoder sees ``t * (h/merge) * (w/merge)`` image tokens.
    """

    t: int
    h: int
    w: int
    merge: int

    @property
    def patches(self) -> int:
        return self.t * self.h * self.w

    @property
    def merged_h(self) -> int:
        return self.h // self.merge

    @property
    def merged_w(self) -> int:
        return self.w // self.merge

    @property
    def tokens(self) -> int:
        """Image tokens in the decoder (after the spatial merge)."""
        return self.t * self.merged_h * self.merged_w

    def block_major_index(self) -> np.ndarray:
        """(t, h, w) int array: the sequence index (within this image) of each raster patch."""
        m = self.merge
        t, bh, bw, i, j = np.meshgrid(
            np.arange(self.t),
            np.arange(self.merged_h),
            np.arange(self.merged_w),
            np.arange(m),
            np.arange(m),
            indexing="ij",
        )
        seq = ((t * self.merged_h + bh) * self.merged_w + bw) * m * m + i * m + j
        # seq is laid out (t, bh, bw, i, j); raster wants (t, bh, i, bw, j).
        return seq.transpose(0, 1, 3, 2, 4).reshape(self.t, self.h, self.w)


def grids_from_thw(image_grid_thw: torch.Tensor | Sequence[Sequence[int]], merge: int) -> list[Grid]:
    """One `Grid` per image from the processor's ``image_grid_thw`` ((n_images, 3) in patches)."""
    rows = image_grid_thw.tolist() if isinstance(image_grid_thw, torch.Tensor) else list(image_grid_thw)
    grids = []
    for t, h, w in rows:
        if h % merge or w % merge:
            raise ValueError(f"grid {h}x{w} patches is not divisible by the merge size {merge}")
        grids.append(Grid(int(t), int(h), int(w), merge))
    return grids


def sequence_to_grids(values: np.ndarray | torch.Tensor, grids: Sequence[Grid]) -> list[np.ndarray]:
    """Split a block-major vision sequence into raster grids, one per image.

    ``values`` is ``(..., S)`` over the whole vision sequence (all images, block-major order);
    returns for each image ``(..., t, h, w)``. A plain ``reshape(h, w)`` would scramble the map.
    """
    arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    total = sum(g.patches for g in grids)
    if arr.shape[-1] != total:
        raise ValueError(f"sequence has {arr.shape[-1]} patches, image_grid_thw says {total}")
    out, start = [], 0
    for g in grids:
        part = arr[..., start : start + g.patches]
        out.append(part[..., g.block_major_index()])
        start += g.patches
    return out


def split_merged_tokens(values: np.ndarray | torch.Tensor, grids: Sequence[Grid]) -> list[np.ndarray]:
    """Split ``(..., n_image_tokens)`` decoder values into ``(..., t, h/m, w/m)`` raster grids per image."""
    arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    total = sum(g.tokens for g in grids)
    if arr.shape[-1] != total:
        raise ValueError(f"{arr.shape[-1]} image tokens, image_grid_thw says {total}")
    out, start = [], 0
    for g in grids:
        part = arr[..., start : start + g.tokens]
        out.append(part.reshape(*part.shape[:-1], g.t, g.merged_h, g.merged_w))
        start += g.tokens
    return out


def grid_to_sequence(values: np.ndarray | torch.Tensor, grid: Grid) -> np.ndarray | torch.Tensor:
    """One image's raster grid ``(..., t, h, w)`` in the vision tower's block-major sequence order
    ``(..., t*h*w)``: the inverse of `sequence_to_grids` for that image. Keeps the array type."""
    if tuple(values.shape[-3:]) != (grid.t, grid.h, grid.w):
        raise ValueError(
            f"values of shape {tuple(values.shape)} do not end in the grid {grid.t, grid.h, grid.w}"
        )
    # block_major_index gives each raster patch its sequence index; its inverse permutation reads
    # the raster in sequence order.
    order = np.argsort(grid.block_major_index().reshape(-1))
    flat = values.reshape(*values.shape[:-3], grid.patches)
    return flat[..., torch.from_numpy(order)] if isinstance(flat, torch.Tensor) else flat[..., order]


def patches_to_image(
    pixel_values: torch.Tensor,
    grid: Grid,
    patch: int,
    temporal: int,
    mean: Sequence[float],
    std: Sequence[float],
    channels: int = 3,
) -> np.ndarray:
    """Rebuild the resized image ``(h*patch, w*patch, channels)`` uint8 from one image's ``pixel_values``.

    ``pixel_values`` is ``(t*h*w, channels*temporal*patch*patch)`` as the Qwen-VL image processors
    emit it (block-major patches, each flattened channel, time, row, column). The first temporal
    slice of the first temporal patch is returned.
    """
    flat = pixel_values.detach().float().cpu().numpy()
    if flat.shape != (grid.patches, channels * temporal * patch * patch):
        raise ValueError(f"pixel_values {flat.shape} do not match grid {grid} with patch {patch}")
    px = flat.reshape(grid.patches, channels, temporal, patch, patch)[:, :, 0]
    raster = px[grid.block_major_index()[0].reshape(-1)]  # (h*w, c, p, p) in raster order
    img = raster.reshape(grid.h, grid.w, channels, patch, patch).transpose(0, 3, 1, 4, 2)
    img = img.reshape(grid.h * patch, grid.w * patch, channels)
    img = img * np.asarray(std, dtype=np.float32) + np.asarray(mean, dtype=np.float32)
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
