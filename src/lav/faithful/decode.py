"""Greedy answers decoded on from forced forwards' own key/value caches, many batches at once.

A forced forward of a step's image already holds what greedy decoding needs: its most likely token
at every answer position, and the keys and values of every position. Greedy decoding agrees with the
forced answer up to a row's first differing position, so a row's greedy answer is the forced prefix
up to there, then the forward's own most likely token there, then tokens decoded one forward at a
time from the cache cut back to that position.

`GreedyPool` keeps those rows of several forced batches (their cache rows only, cut back to the
batch's earliest differing position; the rest of the forward's cache is freed) and decodes them
together: one forward per token for every pooled row, instead of one per token per batch. It holds
at most ``budget`` bytes of cache: the caller decodes (`GreedyPool.decode`) before adding a batch
that would go beyond it (`GreedyPool.fits`). The rotary positions of the decoded tokens are given
explicitly (each row's own offset, read from the forced forward), so rows of different batches
decode together whatever batch they came from.

Only caches of plain full-attention layers can be cut back and joined: linear-attention layers
(Qwen3.5, Qwen4-Exp) keep a recurrent state per row, not per position; `poolable` says so before any
forward, and `GreedyPool.add` refuses a cache it cannot cut (False): those rows generate afresh.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..models.parts import ModelParts, attention_sizes
from ..models.spec import unwrap
from ..scoring import forward_parameters

if TYPE_CHECKING:
    from ..analysis import Visualizer

#: Bytes of key/value cache one faithfulness pass holds at most by default: the forced batch's and
#: the pooled rows' (``--faithfulness-batch-size`` sets the batch instead).
CACHE_BUDGET = 2 * 2**30


def cache_bytes(config: Any, layers: int, tokens: int, element_size: int) -> int:
    """Bytes of key/value cache one row of ``tokens`` positions holds in ``layers`` attention layers
    of a model of ``config`` (keys and values of every key/value head), ``element_size`` bytes each."""
    shape = attention_sizes(config)
    return 2 * layers * shape.text_kv_heads * shape.text_head_dim * tokens * element_size


def row_bytes(viz: Visualizer, tokens: int) -> int:
    """`cache_bytes` of one row of ``tokens`` positions of ``viz``'s loaded model."""
    model = viz.model
    element = next((p.element_size() for p in model.parameters() if p.is_floating_point()), 4)
    return cache_bytes(unwrap(model).config, len(viz.parts.decoder_attention), tokens, element)


def poolable(parts: ModelParts) -> bool:
    """Whether a decoder keeps keys and values per position in every layer (every layer full
    attention), so a forced forward's cache can be cut back and decoded on."""
    kinds = parts.decoder_layer_kinds or ("full_attention",) * len(parts.decoder_attention)
    return len(kinds) == parts.num_decoder_layers and all(k == "full_attention" for k in kinds)


def batch_rows(row: int, most: int, budget: int = CACHE_BUDGET) -> int:
    """Rows per forced forward whose cache of ``row`` bytes each fits ``budget`` bytes: at least 1,
    at most ``most``."""
    return max(1, min(most, budget // max(1, row)))


@dataclass
class _Pooled:
    """Rows of one forced batch: their cache (keys, values per layer, cut to ``keep`` positions) and
    what they decode from."""

    keys: list[Hashable]
    layers: list[tuple[torch.Tensor, torch.Tensor] | None]  # None once joined for decoding
    keep: int  # positions kept: the answer's start plus the batch's earliest difference
    start: int
    forced: list[list[int]]  # each row's forced answer tokens
    greedy: list[list[int]]  # each row's most likely token at each answer position and the one after
    rope: torch.Tensor  # each row's rotary offset (rows, 1)


class GreedyPool:
    """Rows of forced batches waiting for their greedy answers (at most ``max_new_tokens`` tokens
    before the end token), decoded together (see the module's text)."""

    def __init__(self, viz: Visualizer, max_new_tokens: int, budget: int = CACHE_BUDGET) -> None:
        self.viz = viz
        self.max_new_tokens = max_new_tokens
        self.budget = budget
        self._pooled: list[_Pooled] = []
        self.bytes = 0
        self._inner = getattr(unwrap(viz.model), "model", None)
        self._params = forward_parameters(viz.model)

    def __len__(self) -> int:
        return sum(len(p.keys) for p in self._pooled)

    def fits(self, more: int) -> bool:
        """Whether ``more`` bytes (a forward's cache) fit beside the pooled rows."""
        return not self._pooled or self.bytes + more <= self.budget

    def add(
        self,
        keys: Sequence[Hashable],
        inputs: dict[str, torch.Tensor],
        cache: Any,
        start: int,
        greedy: torch.Tensor,
        rows: Sequence[int],
    ) -> bool:
        """Pool ``rows`` of a forced batch (``inputs``, unpadded, its answer from ``start``), named
        ``keys``: its forward's ``cache`` and most likely tokens ``greedy`` (batch, answer length + 1).
        Call right after that forward (its rotary offsets are read from the model). False, pooling
        nothing, where the cache cannot be cut back and joined (not plain full-attention layers)."""
        from transformers.cache_utils import DynamicLayer

        ids = inputs["input_ids"]
        length, n = ids.shape[1], ids.shape[1] - start
        layers = getattr(cache, "layers", None)
        rope = getattr(self._inner, "rope_deltas", None)
        if (
            not layers
            or any(type(layer) is not DynamicLayer for layer in layers)
            or cache.get_seq_length() != length
            or rope is None
            or rope.shape[0] != ids.shape[0]
            or (self._pooled and self._pooled[0].start != start)
        ):
            return False
        forced = ids[:, start:].tolist()
        best = greedy.tolist()
        first = []
        for i in rows:
            differs = [g != f for g, f in zip(best[i][:n], forced[i], strict=True)]
            first.append(differs.index(True) if True in differs else n)
        keep = start + min(first)
        index = torch.tensor(list(rows))
        # index_select copies only the rows and positions kept, so the forward's cache can go (each
        # layer where it is: a model split over devices keeps its layers' caches apart).
        kept = []
        for layer in layers:
            at = index.to(layer.keys.device)
            kept.append(
                (layer.keys[:, :, :keep].index_select(0, at), layer.values[:, :, :keep].index_select(0, at))
            )
        self._pooled.append(
            _Pooled(
                list(keys), kept, keep, start, [forced[i] for i in rows], [best[i] for i in rows],
                rope.index_select(0, index.to(rope.device)),
            )
        )  # fmt: skip
        self.bytes += sum(k.nbytes + v.nbytes for k, v in kept)
        return True

    def decode(self) -> dict[Hashable, list[int]]:
        """Every pooled row's greedy answer (token ids before the end token), by key; the pool empties."""
        from transformers.cache_utils import DynamicCache

        pooled, self._pooled, self.bytes = self._pooled, [], 0
        if not pooled:
            return {}
        keep = min(p.keep for p in pooled)
        at = keep - pooled[0].start  # the answer position every row goes on from
        cache = DynamicCache(_joined(pooled, keep))
        rope = torch.cat([p.rope for p in pooled])
        ends = self.viz.end_ids()
        keys: list[Hashable] = []
        answers: list[list[int]] = []
        first: list[int] = []
        for p in pooled:
            for r, key in enumerate(p.keys):
                keys.append(key)
                answers.append(p.forced[r][:at])  # greedy agrees with the forced answer up to ``at``
                first.append(p.greedy[r][at])  # and picks the forward's own most likely token there
        del pooled
        going = {i for i, a in enumerate(answers) if len(a) < self.max_new_tokens}
        self._take(first, answers, going, ends)
        token = torch.tensor(first, device=rope.device)[:, None]
        model, params = self.viz.model, self._params
        kwargs: dict[str, Any] = {
            "use_cache": True,
            "cache" if "cache" in params else "past_key_values": cache,
        }
        position = keep  # of the token fed next
        while going:
            # Each row's rotary position, given: rows of different batches decode together.
            kwargs["position_ids"] = (position + rope).view(1, -1, 1).expand(3, -1, -1)
            if "cache_position" in params:  # transformers 4.57 reads the positions from it
                kwargs["cache_position"] = torch.tensor([position], device=token.device)
            token = model(input_ids=token, **kwargs).logits[:, -1].argmax(-1, keepdim=True)
            position += 1
            self._take(token[:, 0].tolist(), answers, going, ends)
        return dict(zip(keys, answers, strict=True))

    def _take(self, tokens: list[int], answers: list[list[int]], going: set[int], ends: set[int]) -> None:
        """Append each going row's next token to its answer; a row ends at an end token or at the
        length limit."""
        for i, t in enumerate(tokens):
            if i not in going:
                continue
            if t in ends:
                going.discard(i)
                continue
            answers[i].append(t)
            if len(answers[i]) >= self.max_new_tokens:
                going.discard(i)


def _joined(pooled: list[_Pooled], keep: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's keys and values of every pooled row, cut to ``keep`` positions, joined a layer at
    a time as the cache takes them (one pass, in 4.57 and 5); each pooled layer is let go once
    joined, so the pool and its joined copy are never both held whole."""
    for j in range(len(pooled[0].layers)):
        parts = [p.layers[j] for p in pooled]
        for p in pooled:
            p.layers[j] = None
        yield torch.cat([k[:, :, :keep] for k, _ in parts]), torch.cat([v[:, :, :keep] for _, v in parts])
