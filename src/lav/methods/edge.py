"""Edge map: the attention each patch *receives* in the last vision blocks (shared/DESIGN.md)."""

from __future__ import annotations

import numpy as np

from ..capture import vision_received
from ..result import Map
from .base import Item, MapMethod, Needs, Selection, minmax


class Edge(MapMethod):
    """``edge`` (grid_h, grid_w) in [0,1]: received attention, mean over heads and the chosen blocks.

    Arrays: ``edge_raw`` (grid_h, grid_w) the un-normalised mean; ``edge_layers`` (L, grid_h, grid_w)
    per block. Info: ``windowed_blocks``, the chosen blocks that attend within Qwen2.5-VL windows.
    """

    name = "edge"

    def needs(self, selection: Selection) -> Needs:
        return Needs(vision_blocks=selection.vision_blocks)

    def reduce(self, item: Item, selection: Selection) -> list[Map]:
        per_block = []
        for block in selection.vision_blocks:
            heads = vision_received(item.rec, block, item.grids)[item.image_index]  # (H, t, h, w)
            per_block.append(heads.mean(axis=0)[0])  # a still image has one temporal slice
        layers = np.stack(per_block).astype(np.float64)
        raw = layers.mean(axis=0)
        windowed = [b for b in selection.vision_blocks if item.parts.is_windowed(b)]
        return [
            Map(
                name=self.name,
                values=minmax(raw),
                grid="patch",
                style="edge",
                title="Edge map",
                layers=selection.vision_blocks,
                arrays={"edge_raw": raw.astype(np.float32), "edge_layers": layers.astype(np.float32)},
                info={"windowed_blocks": windowed},
            )
        ]
