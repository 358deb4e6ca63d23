"""Attention rollout (Abnar & Zuidema, 2020) over the vision blocks, as the edge map's option.

With ``Ã_b = (I + mean_h A_b) / 2`` and ``R = Ã_B ... Ã_0`` (blocks 0 up to the last chosen edge
block), ``edge_rollout`` is the column sum of R: how much each patch flows into all of the last
block's outputs. It is computed without R or any A: ``1ᵀR`` is a row vector pushed down the blocks
from the last (``v <- v/2 + (v A_b)/2`` averaged over heads), and ``v A`` is a weighted column sum
taken by a chunked softmax over query blocks (O(chunk x N) memory per head). What it keeps is each
block's queries and keys, ``2 x blocks x N x dim`` values in the model's dtype: O(N), but the whole
tower's worth (e.g. 32 blocks x 17,052 patches x 1,280 in bfloat16 = 2.8 GB for a 1568x2784
screenshot with a Qwen2.5-VL-7B-sized tower); `MAX_KEPT_BYTES` refuses more than that.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from ..capture import Backend, override
from ..errors import InputError, LavError
from ..geometry import sequence_to_grids, window_permutation
from ..result import Map
from .base import Item, MapMethod, Needs, Runner, Selection, minmax

#: Queries and keys kept for the rollout, at most (bytes); above it the method refuses.
MAX_KEPT_BYTES = 4 * 2**30
#: Softmax elements per chunk of queries (H x chunk x N), about 256 MB in float32.
CHUNK_ELEMENTS = 2**26


@contextmanager
def _keep_qk(model: torch.nn.Module, parts, blocks: Sequence[int]) -> Iterator[dict[int, list]]:
    """While inside: each chosen vision block's (q, k, scale) per ``cu_seqlens`` chunk, in call order."""
    kept: dict[int, list] = {b: [] for b in blocks}
    roles = {id(parts.vision_attention[b]): b for b in blocks}
    budget = [MAX_KEPT_BYTES]

    def keeping(backend: Backend):
        def attention(module, query, key, value, *args, **kwargs):
            block = roles.get(id(module))
            if block is not None:
                budget[0] -= 2 * query.numel() * query.element_size()
                if budget[0] < 0:
                    raise InputError(
                        f"edge_rollout would keep more than {MAX_KEPT_BYTES / 2**30:.0f} GiB of vision "
                        "queries and keys for this image; use a smaller image (--max-pixels) or fewer "
                        "edge layers"
                    )
                scaling = kwargs.get("scaling") or getattr(module, "scaling", None) or query.shape[-1] ** -0.5
                cu = kwargs.get("cu_seq_lens_q")
                bounds = [0, query.shape[2]] if cu is None else [int(x) for x in cu.tolist()]
                for lo, hi in itertools.pairwise(bounds):
                    if hi > lo:
                        kept[block].append((query[0, :, lo:hi].detach(), key[0, :, lo:hi].detach(), scaling))
            return backend(module, query, key, value, *args, **kwargs)

        return attention

    with override(model, keeping, parts.vision_attention, "attention rollout"):
        yield kept


def weighted_received(q: torch.Tensor, k: torch.Tensor, scale: float, weights: torch.Tensor) -> torch.Tensor:
    """(n,) mean over heads of ``sum_i weights_i softmax_j(q_i . k_j * scale)``; (H, n, D) q and k."""
    heads, n = q.shape[0], q.shape[1]
    compute = torch.promote_types(q.dtype, torch.float32)
    q, k = q.to(compute), k.to(compute)
    chunk = max(1, CHUNK_ELEMENTS // (heads * n))
    total = torch.zeros(heads, n, dtype=compute, device=q.device)
    for lo in range(0, n, chunk):
        probs = torch.softmax(torch.matmul(q[:, lo : lo + chunk], k.transpose(-1, -2)) * scale, dim=-1)
        total += torch.einsum("c,hcn->hn", weights[lo : lo + chunk].to(compute), probs)
    return total.mean(dim=0)


class EdgeRollout(MapMethod):
    """``edge_rollout`` (grid_h, grid_w) in [0,1]: the column sums of the attention rollout through
    vision blocks 0 .. the last chosen edge block, min-max.

    One extra pass of the vision tower (`get_image_features`). Arrays: ``edge_rollout_raw`` (sums to
    the image's patch count). Info: ``blocks`` (how many blocks were rolled out).
    """

    name = "edge_rollout"
    default = False

    def needs(self, selection: Selection) -> Needs:
        return Needs()

    def extra_pass(self, runner: Runner, selection: Selection) -> list[Any]:
        parts = runner.parts
        blocks = list(range(max(selection.vision_blocks) + 1))
        inputs = runner.inputs
        with torch.inference_mode(), _keep_qk(runner.model, parts, blocks) as kept:
            runner.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
            total = sum(q.shape[1] for q, _, _ in kept[blocks[0]])
            flow = torch.ones(total, dtype=torch.float64)
            for block in reversed(blocks):
                pieces, start = [], 0
                for q, k, scale in kept[block]:
                    n = q.shape[1]
                    pieces.append(weighted_received(q, k, scale, flow[start : start + n].to(q.device)).cpu())
                    start += n
                if start != total:
                    raise LavError(f"vision block {block} saw {start} patches, block 0 saw {total}")
                flow = 0.5 * flow + 0.5 * torch.cat(pieces).double()
        seq = flow.numpy()[None]
        if parts.spec.windowed:
            # Qwen2.5-VL keeps the tower's hidden states in window order through every block (windowed
            # or not) and undoes it after the merger (transformers 4.57 and 5.24).
            seq = seq[:, np.argsort(window_permutation(runner.grids, parts.window_size, parts.patch))]
        grids = sequence_to_grids(seq, runner.grids)  # per image (1, t, h, w)
        return [g[0, 0].astype(np.float64) for g in grids]

    def reduce(self, item: Item, selection: Selection) -> list[Map]:
        raw = item.extra[self.name]
        return [
            Map(
                name=self.name,
                values=minmax(raw),
                grid="patch",
                style="edge",
                title="Edge map, attention rollout",
                layers=tuple(range(max(selection.vision_blocks) + 1)),
                arrays={"edge_rollout_raw": raw.astype(np.float32)},
                info={"blocks": max(selection.vision_blocks) + 1},
            )
        ]
