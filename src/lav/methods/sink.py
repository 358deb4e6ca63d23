"""Sink-aware focus: the decision focus with attention-sink image tokens masked before normalising.

Raw decoder attention of real Qwen-VL checkpoints piles up on a few image tokens that every query
attends to whatever it asks (QwenLM/Qwen3-VL#1551, #2047): after min-max one such cell turns the
rest of the map dark. Attention alone cannot tell such a sink from a target every row looks at, so
the rule reads the hidden states instead, as Kang et al. (ICLR 2025, "See What You Are Told: Visual
Attention Sink in Large Multimodal Models") do: sink tokens carry *massive activations* in a few
fixed "sink dimensions", the same ones as the language model's own sink, the sequence's first token.

Rule, per chosen decoder layer, on x = the layer's attention input (its input RMSNorm output):
the sink dimensions are those where the item's first token has |x_d| >= `SINK_TAU`; an image token
is a sink when |x_d| >= `SINK_TAU` in one of them. A token that is a sink in any chosen layer is
masked. A model whose first token shows no massive activation has no sink by this rule, and the map
equals ``focus`` (``info["sink_dims"]`` says so). The recording keeps each position's
`lav.capture.recorder.MASSIVE_TOPK` largest dimensions: a sink dimension that is not among a
token's largest four is not seen (massive activations sit in one to three dimensions). Nothing is
hidden silently: the masked cells are listed in ``info["masked_cells"]`` and drawn in
``focus_sink_masked_cells``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import LavError
from ..result import Map
from .base import Item, MapMethod, Needs, Selection, merged_grid, minmax
from .focus import answer_rows

#: Kang et al.'s threshold on |x_d| (x after the layer's input RMSNorm) for a massive activation.
SINK_TAU = 20.0


def sink_dimensions(values: torch.Tensor, dims: torch.Tensor, first: int) -> list[int]:
    """Dimensions where the first token's attention input is massive (|x_d| >= SINK_TAU).

    ``values``, ``dims``: one item's `Recording.massive` entry, (S, MASSIVE_TOPK) each.
    """
    return sorted(int(d) for v, d in zip(values[first], dims[first], strict=True) if v >= SINK_TAU)


def sink_scores(values: torch.Tensor, dims: torch.Tensor, positions: torch.Tensor, sink_dims: list[int]):
    """(n,) phi = max |x_d| over the sink dimensions, for the tokens at ``positions`` (0 where none
    of the token's largest dimensions is a sink dimension)."""
    v, d = values[positions].double(), dims[positions]
    hit = torch.isin(d, torch.tensor(sink_dims, dtype=d.dtype))
    return torch.where(hit, v, torch.zeros_like(v)).amax(dim=-1).numpy()


class SinkMaskedFocus(MapMethod):
    """``focus_sink_masked`` (grid_h/m, grid_w/m) in [0,1]: the raw focus (as ``focus``) with sink
    tokens set to the smallest other value before min-max.

    Arrays: ``focus_sink_masked_raw`` (raw focus, sinks set to 0), ``focus_sink_masked_cells``
    (h/m, w/m) 1 on masked cells, ``focus_sink_share`` (L, R): per chosen layer and coordinate-digit
    row, the share of the row's whole attention (mean over heads) that falls on the masked tokens;
    ``focus_sink_phi`` (h/m, w/m): each token's largest |x_d| in a sink dimension over the layers.
    Info: ``masked_cells`` ([row, col] in the merged grid), ``sink_dims`` (decoder layer id -> the
    first token's massive dimensions), ``rule``, ``tokens``, ``rows``.
    """

    name = "focus_sink_masked"
    default = False

    def needs(self, selection: Selection) -> Needs:
        return Needs(decoder_layers=selection.decoder_layers, hidden_layers=selection.decoder_layers)

    def reduce(self, item: Item, selection: Selection) -> list[Map]:
        rows = list(item.answer.rows)
        # (R, H, n_img) per chosen layer: the digit rows' attention to the image tokens.
        digit_rows = [answer_rows(item, layer, rows) for layer in selection.decoder_layers]
        raw_tokens = torch.stack([a.mean(dim=(0, 1)) for a in digit_rows]).double().mean(dim=0).numpy()
        phi = np.zeros(raw_tokens.shape[0])
        found = {}
        for layer in selection.decoder_layers:
            if layer not in item.rec.massive:
                raise LavError("the sink rule needs the prompt's hidden states; none were recorded")
            values, dims = (t[item.row] for t in item.rec.massive[layer])
            sink_dims = sink_dimensions(values, dims, item.start)
            found[item.parts.decoder_layer_ids[layer]] = sink_dims
            phi = np.maximum(phi, sink_scores(values, dims, item.image_positions, sink_dims))
        sinks = np.flatnonzero(phi >= SINK_TAU)
        # Per layer and digit row: the share of the row's attention on the sinks, mean over heads.
        shares = [a[:, :, list(sinks)].sum(dim=-1).mean(dim=1) for a in digit_rows]
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
        arrays = {
            "focus_sink_masked_raw": merged_grid(item, raw_zeroed).astype(np.float32),
            "focus_sink_masked_cells": merged_grid(item, cells).astype(np.float32),
            "focus_sink_phi": merged_grid(item, phi).astype(np.float32),
            "focus_sink_share": torch.stack(shares).double().numpy().astype(np.float32),
        }
        info = {
            "masked_cells": [[int(s) // width, int(s) % width] for s in sinks],
            "sink_dims": {str(k): v for k, v in found.items()},
            "rule": (
                f"image tokens with a massive activation (|x_d| >= {SINK_TAU:g}, x = the decoder "
                "layer's attention input after its RMSNorm) in a dimension where the first "
                "token has one too (Kang et al., ICLR 2025), in any chosen layer"
            ),
        }
        values = minmax(merged_grid(item, masked))
        return [self.decision_map(item, selection, values, "Decision focus, sinks masked", arrays, info=info)]
