"""Indexer selection: which image tokens an indexed-attention layer let the answer's queries see.

Qwen4-Exp's QSA indexer picks, per query, a budget of key blocks; the layer's softmax runs over those
keys only, so a target the indexer never selected gets no attention at all, however the rest of the
model looks. transformers folds the selection into the mask the attention function receives; the
recorder keeps the keys that mask allowed beside each recorded row (`lav.capture.decoder_allowed`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..capture import decoder_allowed
from ..errors import CaptureError, InputError
from ..models import ModelParts
from ..models.spec import INDEXED_ATTENTION
from ..result import Map
from .base import Item, MapMethod, Needs, Selection, merged_grid


def _indexed(parts: ModelParts, layers: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(i for i in layers if parts.decoder_layer_kinds[i] == INDEXED_ATTENTION)


class IndexerSelection(MapMethod):
    """``indexer_selection`` (grid_h/m, grid_w/m) in [0,1]: the share of the coordinate-digit rows
    (and mask heads) whose mask let each image token through, mean over the chosen indexed layers.

    Not min-max scaled: 1 means every row selected the token, 0 that none did. Arrays:
    ``indexer_selection_layers`` (L, h/m, w/m) per layer. Info: ``tokens``, ``rows`` (as for focus)
    and ``decoder_layers`` (the layers' indices among all decoder layers). Runs by default only on
    models with indexed-attention layers.
    """

    name = "indexer_selection"

    def applies(self, parts: ModelParts) -> bool:
        return INDEXED_ATTENTION in parts.decoder_layer_kinds

    def needs(self, selection: Selection) -> Needs:
        return Needs(decoder_layers=selection.decoder_layers)

    def reduce(self, item: Item, selection: Selection) -> list[Map]:
        layers = _indexed(item.parts, selection.decoder_layers)
        if not layers:
            raise InputError(
                "indexer_selection needs indexed-attention layers among the focus layers; "
                f"the chosen ones {list(selection.decoder_layers)} have no indexer"
            )
        rows = list(item.answer.rows)
        wanted = [item.answer_start - 1 + i for i in rows]
        shares = []
        for layer in layers:
            positions, allowed = decoder_allowed(item.rec, layer)  # (R, B, 1|H, K)
            index = {p: n for n, p in enumerate(positions)}
            missing = [p for p in wanted if p not in index]
            if missing:
                raise CaptureError(
                    f"decoder layer {layer} recorded no mask for positions {missing[:3]}: "
                    "run one forward or one generate per capture"
                )
            picked = allowed[[index[p] for p in wanted], item.row][:, :, item.image_positions]
            shares.append(picked.double().mean(dim=(0, 1)))  # (n_img,)
        per_layer = merged_grid(item, torch.stack(shares).numpy()).astype(np.float32)  # (L, h/m, w/m)
        values = per_layer.mean(axis=0).astype(np.float32)
        arrays = {"indexer_selection_layers": per_layer}
        return [self.decision_map(item, selection, values, "Indexer selection", arrays, layers=layers)]
