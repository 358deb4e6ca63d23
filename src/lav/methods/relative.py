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
from .base import Item, MapMethod, Needs, Runner, Selection, merged_grid, minmax
from .focus import answer_rows

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

    def extra_pass(self, runner: Runner, selection: Selection) -> list[Any]:
        # The same image, system prompt, template and coordinates; only the instruction differs.
        requests = [replace(r, instruction=self.generic, response=None) for r in runner.requests]
        generic = runner.rerun(requests, runner.answer_ids, Needs(decoder_layers=selection.decoder_layers))
        return [raw_focus_tokens(item, selection.decoder_layers).numpy() for item in generic]

    def reduce(self, item: Item, selection: Selection) -> list[Map]:
        task = raw_focus_tokens(item, selection.decoder_layers).numpy()
        generic = np.asarray(item.extra[self.name], dtype=np.float64)
        ratio = merged_grid(item, task / np.maximum(generic, EPS))
        arrays = {
            "focus_relative_raw": ratio.astype(np.float32),
            "focus_generic_raw": merged_grid(item, generic).astype(np.float32),
        }
        info = {"generic": self.generic}
        return [self.decision_map(item, selection, minmax(ratio), "Relative focus", arrays, info=info)]
