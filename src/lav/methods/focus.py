"""Decision focus: decoder attention from the queries that produce the answer's coordinates."""

from __future__ import annotations

import numpy as np
import torch

from ..capture import decoder_rows
from ..errors import CaptureError
from ..result import Map
from .base import Item, MapMethod, Needs, Selection, merged_grid, minmax


def answer_rows(item: Item, layer: int, indices: list[int]) -> torch.Tensor:
    """(len(indices), H, n_image_tokens) attention rows of the queries that produced answer tokens.

    The token at position p is produced by the query at p-1, so answer token i is decided by the
    query at ``answer_start - 1 + i``.
    """
    positions, rows = decoder_rows(item.rec, layer)  # rows: (R, B, H, K)
    index = {p: n for n, p in enumerate(positions)}
    wanted = [item.answer_start - 1 + i for i in indices]
    missing = [p for p in wanted if p not in index]
    if missing:
        raise CaptureError(
            f"decoder layer {layer} recorded positions {positions[:3]}..{positions[-3:]}, "
            f"not {missing[:3]}: run one forward or one generate per capture"
        )
    picked = rows[[index[p] for p in wanted], item.row]  # (n, H, K)
    return picked[:, :, item.image_positions]


class Focus(MapMethod):
    """``focus`` (grid_h/m, grid_w/m) in [0,1]: mean over heads, coordinate-digit rows and layers.

    Arrays: ``focus_raw``, ``focus_layers`` (L, h/m, w/m) raw per layer, ``focus_heads``
    (L, H, h/m, w/m) raw per layer and head (small: heads x image tokens), ``focus_x`` / ``focus_y``
    (the x / y digits only, normalised; absent without coordinates) and ``image_share`` (L, R): the
    share of each row's attention that falls on image tokens at all. Info: ``tokens`` (which answer
    tokens, in words), ``rows`` (their indices in the answer) and ``decoder_layers`` (the chosen
    layers' indices among all decoder layers, linear-attention ones included).
    """

    name = "focus"

    def needs(self, selection: Selection) -> Needs:
        return Needs(decoder_layers=selection.decoder_layers)

    def reduce(self, item: Item, selection: Selection) -> list[Map]:
        answer = item.answer
        rows, x_rows, y_rows = list(answer.rows), list(answer.x), list(answer.y)
        per_layer, per_head, per_x, per_y, shares = [], [], [], [], []
        for layer in selection.decoder_layers:
            picked = answer_rows(item, layer, rows)  # (R, H, n_img)
            mean_heads = picked.mean(dim=1)  # (R, n_img)
            per_layer.append(mean_heads.mean(dim=0))
            per_head.append(picked.mean(dim=0))  # (H, n_img)
            pos = {r: n for n, r in enumerate(rows)}
            if x_rows:
                per_x.append(mean_heads[[pos[r] for r in x_rows]].mean(dim=0))
            if y_rows:
                per_y.append(mean_heads[[pos[r] for r in y_rows]].mean(dim=0))
            shares.append(picked.sum(dim=-1).mean(dim=1))  # (R,)

        def to_grid(stack: list[torch.Tensor]) -> np.ndarray:
            return merged_grid(item, torch.stack(stack).numpy())  # (L, h/m, w/m)

        layers = to_grid(per_layer)
        raw = layers.mean(axis=0)
        heads = torch.stack(per_head)  # (L, H, n_img)
        n_layers, n_heads = heads.shape[:2]
        heads_grid = to_grid(list(heads.reshape(n_layers * n_heads, -1)))
        # Reduced in the rows' precision (float64 for a float64 model), stored as float32.
        arrays = {
            "focus_raw": raw.astype(np.float32),
            "focus_layers": layers.astype(np.float32),
            "focus_heads": heads_grid.reshape(n_layers, n_heads, *heads_grid.shape[1:]).astype(np.float32),
        }
        if per_x:
            arrays["focus_x"] = minmax(to_grid(per_x).mean(axis=0))
        if per_y:
            arrays["focus_y"] = minmax(to_grid(per_y).mean(axis=0))
        arrays["image_share"] = torch.stack(shares).numpy().astype(np.float32)
        return [self.decision_map(item, selection, minmax(raw), "Decision focus", arrays)]
