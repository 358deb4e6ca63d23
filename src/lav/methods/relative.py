"""Relative focus (Zhang et al., ICLR 2025, "MLLMs know where to look"): attention that any prompt
would give (sinks, borders) cancels when the focus under the user's instruction is divided by the
focus under a generic one, with the *same* answer tokens forced. One extra forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ..result import Map
from .base import Item, MapMethod, Needs, Selection, minmax
from .focus import answer_rows
from .forcing import with_answers
from .sink import merged_grid

GENERIC_INSTRUCTION = "Write a general description of the image."
#: Floor of the generic focus in the division (issue #11's definition).
EPS = 1e-12


def raw_focus_tokens(item: Item, layers: Sequence[int]) -> torch.Tensor:
    """(n_img,) raw focus: mean over ``layers``, heads and the coordinate-digit rows."""
    rows = list(item.answer.rows)
    return torch.stack([answer_rows(item, layer, rows).mean(dim=(0, 1)) for layer in layers]).double().mean(0)


class RelativeFocus(MapMethod):
    """``focus_relative`` (grid_h/m, grid_w/m) in [0,1]: min-max of F_task / max(F_generic, 1e-12).

    F_x is the raw focus (mean over the chosen layers, heads and coordinate-digit rows of the
    attention to image tokens) under instruction x, the answer tokens forced identical in both.
    ``generic``: the generic instruction (same system prompt and template as the user's). Arrays:
    ``focus_relative_raw`` (the ratio), ``focus_generic_raw`` (F_generic). Info: ``generic``,
    ``tokens``, ``rows``, ``decoder_layers``.
    """

    name = "focus_relative"
    default = False

    def __init__(self, generic: str = GENERIC_INSTRUCTION):
        self.generic = generic

    def needs(self, selection: Selection) -> Needs:
        return Needs(decoder_layers=selection.decoder_layers)

    def extra_pass(
        self, viz: Any, prepared: Any, ran: Any, answers: Sequence[Any], selection: Selection
    ) -> list[Any]:
        from ..stages import Request, items, pad_id, prepare, run  # the stages import lav.methods

        requests = [
            Request(r.image, self.generic, None, r.system, r.template, r.coords) for r in prepared.requests
        ]
        generic = prepare(viz, requests, 0)
        inputs, starts = with_answers(generic.inputs, ran.answers, pad_id(viz))
        generic = replace(generic, inputs=inputs, answer_starts=starts, forced=True)
        pass_ = run(viz, generic, Needs(decoder_layers=selection.decoder_layers), 0)
        return [
            raw_focus_tokens(item, selection.decoder_layers).numpy()
            for item in items(viz, generic, pass_, answers)
        ]

    def reduce(self, item: Item, selection: Selection) -> list[Map]:
        task = raw_focus_tokens(item, selection.decoder_layers).numpy()
        generic = np.asarray(item.extra[self.name], dtype=np.float64)
        ratio = merged_grid(item, task / np.maximum(generic, EPS))
        return [
            Map(
                name=self.name,
                values=minmax(ratio),
                grid="merged",
                style="focus",
                title="Relative focus",
                layers=selection.decoder_layers,
                arrays={
                    "focus_relative_raw": ratio.astype(np.float32),
                    "focus_generic_raw": merged_grid(item, generic).astype(np.float32),
                },
                info={
                    "generic": self.generic,
                    "tokens": item.answer.tokens,
                    "rows": list(item.answer.rows),
                    "decoder_layers": [item.parts.decoder_layer_ids[i] for i in selection.decoder_layers],
                },
            )
        ]
