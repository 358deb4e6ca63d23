"""Turn a `Recording` into arrays on the image grids: per-head received attention and decoder rows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..errors import CaptureError
from ..geometry import Grid, sequence_to_grids, window_permutation
from .recorder import Recording


def vision_received(rec: Recording, block: int, grids: Sequence[Grid]) -> list[np.ndarray]:
    """Attention each patch received in ``block``: per image ``(H, t, h, w)`` float32, raster order.

    Chunks are concatenated in call order (= the block's input order). Qwen2.5-VL permutes the
    patches into window order before block 0 and keeps that order through every block, windowed or
    full-attention (transformers 4.57 and 5.24 un-permute only the merger's output), so for that
    family the permutation is undone for every block.
    """
    cached = rec.views.get(("vision", block))
    if cached is not None and cached[0] == tuple(grids):
        return cached[1]
    chunks = rec.vision.get(block)
    if not chunks:
        raise CaptureError(f"vision block {block} recorded nothing: did the forward pass include the image?")
    seq = torch.cat(chunks, dim=1).cpu().numpy()  # float32, or float64 for a float64 model
    total = sum(g.patches for g in grids)
    if seq.shape[1] != total:
        raise CaptureError(
            f"vision block {block} saw {seq.shape[1]} patches, the images have {total}: "
            "run one forward or one generate per capture (or call Recording.reset() between them)"
        )
    parts = rec.parts
    if parts.spec.windowed:
        perm = window_permutation(grids, parts.window_size, parts.patch)
        seq = seq[:, np.argsort(perm)]
    out = sequence_to_grids(seq, grids)
    rec.views[("vision", block)] = (tuple(grids), out)
    return out


def decoder_rows(rec: Recording, layer: int) -> tuple[list[int], torch.Tensor]:
    """Recorded query positions of ``layer`` and their rows ``(R, B, H, K)`` float32 (float64 for a
    float64 model).

    Rows recorded in later decode steps are longer; shorter rows are zero-padded at the end (those
    keys did not exist yet when the query ran, so their attention is zero).
    """
    cached = rec.views.get(("rows", layer))
    if cached is not None:
        return cached
    rows = rec.rows.get(layer, {})
    positions = sorted(rows)
    if not positions:
        return [], torch.zeros(0)
    width = max(rows[p].shape[-1] for p in positions)
    out = torch.zeros(len(positions), *rows[positions[0]].shape[:-1], width, dtype=rows[positions[0]].dtype)
    for i, p in enumerate(positions):
        row = rows[p].cpu()
        out[i, ..., : row.shape[-1]] = row
    rec.views[("rows", layer)] = (positions, out)
    return positions, out


def decoder_allowed(rec: Recording, layer: int) -> tuple[list[int], torch.Tensor]:
    """Recorded query positions of ``layer`` and the keys the mask let each one see ``(R, B, 1|H, K)``
    bool (for an indexed-attention layer: the QSA indexer's selection, with causality and padding).

    Keys that did not exist yet when a query ran are not allowed (False), as in `decoder_rows`.
    """
    cached = rec.views.get(("allowed", layer))
    if cached is not None:
        return cached
    allowed = rec.allowed.get(layer, {})
    positions = sorted(allowed)
    if not positions:
        return [], torch.zeros(0, dtype=torch.bool)
    width = max(allowed[p].shape[-1] for p in positions)
    heads = max(allowed[p].shape[1] for p in positions)
    batch = max(allowed[p].shape[0] for p in positions)
    out = torch.zeros(len(positions), batch, heads, width, dtype=torch.bool)
    for i, p in enumerate(positions):
        mask = allowed[p].cpu()
        out[i, :, :, : mask.shape[-1]] = mask
    rec.views[("allowed", layer)] = (positions, out)
    return positions, out
