"""The two maps, from a `Recording`: edge (vision self-attention received) and decision focus.

Both keep raw values beside a min-max normalised copy in [0,1]; a constant map normalises to all
zeros, never NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .capture import Recording, decoder_rows, vision_received
from .geometry import Grid, split_merged_tokens


def minmax(values: np.ndarray) -> np.ndarray:
    """Scale to [0,1] float32; a constant array becomes zeros."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    if not hi > lo:
        return np.zeros(values.shape, dtype=np.float32)
    return ((values - lo) / (hi - lo)).astype(np.float32)


@dataclass(frozen=True)
class EdgeMaps:
    """``edge`` (grid_h, grid_w) in [0,1]; ``raw`` its un-normalised mean; ``layers`` (L, grid_h, grid_w) raw."""

    edge: np.ndarray
    raw: np.ndarray
    layers: np.ndarray
    blocks: tuple[int, ...]


def edge_maps(rec: Recording, grids: Sequence[Grid], image: int = 0) -> EdgeMaps:
    """Attention each patch receives, averaged over heads (and the first temporal slice), per block."""
    per_block = []
    for block in rec.vision_blocks:
        heads = vision_received(rec, block, grids)[image]  # (H, t, h, w)
        per_block.append(heads.mean(axis=0)[0])
    layers = np.stack(per_block).astype(np.float32)
    raw = layers.mean(axis=0)
    return EdgeMaps(minmax(raw), raw, layers, rec.vision_blocks)


@dataclass(frozen=True)
class FocusMaps:
    """Decoder attention from chosen answer tokens to the image, on the merged grid (h/m, w/m).

    ``focus`` in [0,1]; ``raw`` mean over heads, rows and layers; ``x`` / ``y`` the same over the
    rows of the x / y digits only (None without coordinates); ``layers`` (L, h/m, w/m) raw per layer;
    ``image_share`` (L, R) the share of each chosen row's attention on image tokens, per layer.
    """

    focus: np.ndarray
    raw: np.ndarray
    x: np.ndarray | None
    y: np.ndarray | None
    layers: np.ndarray
    image_share: np.ndarray
    rows: tuple[int, ...]
    decoder_layers: tuple[int, ...]


def _image_rows(rec: Recording, layer: int, answer_start: int, image_pos: torch.Tensor) -> torch.Tensor:
    """(n_answer_tokens, H, n_image_tokens) rows of the queries that produced each answer token."""
    positions, rows = decoder_rows(rec, layer)
    wanted = [answer_start - 1 + i for i in range(len(positions))]
    if positions[: len(wanted)] != wanted:
        raise RuntimeError(f"decoder layer {layer} recorded positions {positions}, expected {wanted}")
    return rows[:, 0][:, :, image_pos]  # batch 0


def focus_maps(
    rec: Recording,
    grids: Sequence[Grid],
    input_ids: torch.Tensor,
    image_token_id: int,
    answer_start: int,
    token_rows: Sequence[int],
    x_rows: Sequence[int] = (),
    y_rows: Sequence[int] = (),
    image: int = 0,
) -> FocusMaps:
    """Decision focus for the answer tokens ``token_rows`` (indices into the answer, 0 = first token).

    The token at position p is produced by the query at p-1, so answer token i is decided by the
    query at ``answer_start - 1 + i``.
    """
    image_pos = (input_ids[0] == image_token_id).nonzero().flatten()
    per_layer, per_layer_x, per_layer_y, shares = [], [], [], []
    for layer in rec.decoder_layers:
        rows = _image_rows(rec, layer, answer_start, image_pos)  # (R_all, H, n_img)
        mean_heads = rows.mean(dim=1)  # (R_all, n_img)
        per_layer.append(mean_heads[list(token_rows)].mean(dim=0))
        if x_rows:
            per_layer_x.append(mean_heads[list(x_rows)].mean(dim=0))
        if y_rows:
            per_layer_y.append(mean_heads[list(y_rows)].mean(dim=0))
        shares.append(rows[list(token_rows)].sum(dim=-1).mean(dim=1))  # (R,)

    def to_grid(stack: list[torch.Tensor]) -> np.ndarray:
        tokens = torch.stack(stack).numpy()  # (L, n_img over all images)
        return split_merged_tokens(tokens, grids)[image][:, 0].astype(np.float32)  # (L, h/m, w/m)

    layers = to_grid(per_layer)
    raw = layers.mean(axis=0)
    x = to_grid(per_layer_x).mean(axis=0) if per_layer_x else None
    y = to_grid(per_layer_y).mean(axis=0) if per_layer_y else None
    return FocusMaps(
        focus=minmax(raw),
        raw=raw,
        x=None if x is None else minmax(x),
        y=None if y is None else minmax(y),
        layers=layers,
        image_share=torch.stack(shares).numpy().astype(np.float32),
        rows=tuple(token_rows),
        decoder_layers=rec.decoder_layers,
    )
