"""Sink-aware focus: the decision focus with attention-sink image tokens masked before normalising.

Raw decoder attention of real Qwen-VL checkpoints piles up on a few image tokens that every query
attends to whatever it asks (QwenLM/Qwen3-VL#1551, #2047): after min-max one such cell turns the
rest of the map dark. The rule (README, "Methods beyond raw attention"): score each image token by
its attention from *every* recorded answer row (not only the coordinate digits: a sink does not
depend on the query), mean over the chosen layers and heads; a token is a sink when its score is at
least `SINK_FACTOR` times the mean score over the image's tokens, keeping at most the
`MAX_SINK_FRACTION` highest (at least one). Nothing is hidden silently: the masked cells are listed in
``info["masked_cells"]`` and drawn in ``focus_sink_masked_cells``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..capture import decoder_rows
from ..geometry import split_merged_tokens
from ..result import Map
from .base import Item, MapMethod, Needs, Selection, minmax
from .focus import answer_rows

#: A sink takes at least this many times its uniform share of the image's attention.
SINK_FACTOR = 10.0
#: At most this fraction of the image's tokens (and at least one) is masked, highest score first.
MAX_SINK_FRACTION = 0.02


def merged_grid(item: Item, tokens: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(..., n_image_tokens)`` of this item's image -> ``(..., h/m, w/m)`` float64 raster."""
    return split_merged_tokens(tokens, [item.grid])[0][..., 0, :, :].astype(np.float64)


def all_answer_rows(item: Item, layer: int) -> torch.Tensor:
    """(R_all, H, n_img): every recorded row of this item from the query before its first answer token."""
    positions, rows = decoder_rows(item.rec, layer)  # (R, B, H, K)
    keep = [n for n, p in enumerate(positions) if p >= item.answer_start - 1]
    return rows[keep, item.row][:, :, item.image_positions]


def sink_tokens(scores: np.ndarray) -> np.ndarray:
    """Indices of the sink tokens among ``scores`` (n_img,), by the rule in the module docstring."""
    n = scores.shape[0]
    mean = float(scores.mean())
    if not mean > 0:
        return np.zeros(0, dtype=np.int64)
    candidates = np.flatnonzero(scores >= SINK_FACTOR * mean)
    limit = max(1, int(MAX_SINK_FRACTION * n))
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    return np.sort(order[:limit])


class SinkMaskedFocus(MapMethod):
    """``focus_sink_masked`` (grid_h/m, grid_w/m) in [0,1]: the raw focus (as ``focus``) with sink
    tokens set to the smallest other value before min-max.

    Arrays: ``focus_sink_masked_raw`` (raw focus, sinks set to 0), ``focus_sink_masked_cells``
    (h/m, w/m) 1 on masked cells, ``focus_sink_share`` (L, R): per chosen layer and coordinate-digit
    row, the share of the row's whole attention (mean over heads) that falls on the masked tokens.
    Info: ``masked_cells`` ([row, col] in the merged grid), ``rule``, ``tokens``, ``rows``.
    """

    name = "focus_sink_masked"
    default = False

    def needs(self, selection: Selection) -> Needs:
        return Needs(decoder_layers=selection.decoder_layers)

    def reduce(self, item: Item, selection: Selection) -> list[Map]:
        rows = list(item.answer.rows)
        focus, score = [], []
        for layer in selection.decoder_layers:
            focus.append(answer_rows(item, layer, rows).mean(dim=(0, 1)))  # (n_img,)
            score.append(all_answer_rows(item, layer).mean(dim=(0, 1)))
        raw_tokens = torch.stack(focus).double().mean(dim=0).numpy()
        sinks = sink_tokens(torch.stack(score).double().mean(dim=0).numpy())
        shares = []
        for layer in selection.decoder_layers:
            picked = answer_rows(item, layer, rows)[:, :, list(sinks)]  # (R, H, n_sinks)
            shares.append(picked.sum(dim=-1).mean(dim=1))  # (R,)
        masked = raw_tokens.copy()
        keep = np.ones(masked.shape[0], dtype=bool)
        keep[sinks] = False
        floor = float(masked[keep].min()) if keep.any() else 0.0
        masked[sinks] = floor
        cells = np.zeros(masked.shape[0], dtype=np.float32)
        cells[sinks] = 1.0
        raw_zeroed = raw_tokens.copy()
        raw_zeroed[sinks] = 0.0
        width = item.grid.merged_w
        return [
            Map(
                name=self.name,
                values=minmax(merged_grid(item, masked)),
                grid="merged",
                style="focus",
                title="Decision focus, sinks masked",
                layers=selection.decoder_layers,
                arrays={
                    "focus_sink_masked_raw": merged_grid(item, raw_zeroed).astype(np.float32),
                    "focus_sink_masked_cells": merged_grid(item, cells).astype(np.float32),
                    "focus_sink_share": torch.stack(shares).double().numpy().astype(np.float32),
                },
                info={
                    "masked_cells": [[int(s) // width, int(s) % width] for s in sinks],
                    "rule": (
                        f"image tokens whose attention from all answer rows (mean over layers and heads) "
                        f"is >= {SINK_FACTOR:g}x the image mean, at most {MAX_SINK_FRACTION:.0%} of them"
                    ),
                    "tokens": item.answer.tokens,
                    "rows": rows,
                    "decoder_layers": [item.parts.decoder_layer_ids[i] for i in selection.decoder_layers],
                },
            )
        ]
