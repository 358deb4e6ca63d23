"""Test-only ground truth for Qwen4-Exp's QSA indexer, written from the algorithm, not from lav.

`indexer_inputs` keeps what each indexed layer's indexer receives (hidden states and the rotary
tables, model inputs rather than its decision); `reference_selection` recomputes the selection in
float64 for a prefill without padding: per query, the top ``budget / ratio`` complete blocks of
``ratio`` visible keys by ``sum_heads relu(q . rope(norm(mean_block(k)))) / sqrt(d)``, plus the
incomplete tail block.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


def _rms(x, norm):
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps)
    return x * (1.0 + norm.weight.double())


def _rope(x, cos, sin):
    rot = cos.shape[-1]
    head, tail = x[..., :rot], x[..., rot:]
    half = rot // 2
    rotated = torch.cat([-head[..., half:], head[..., :half]], dim=-1)
    return torch.cat([head * cos + rotated * sin, tail], dim=-1)


@contextmanager
def indexer_inputs(model):
    """Per indexed layer (in order): a list of (hidden_states, cos, sin, selection) per call.

    ``selection`` is the indexer's own returned mask (B, 1, Q, K), kept to compare with.
    """
    indexers = [m for m in model.modules() if type(m).__name__ == "Qwen4ExpTextQSAIndexer"]
    calls = [[] for _ in indexers]
    handles = []
    for store, module in zip(calls, indexers, strict=True):

        def hook(mod, args, out, store=store):
            hidden, (cos, sin) = args[0], args[1]
            store.append((hidden.detach().clone(), cos.detach().clone(), sin.detach().clone(), out.clone()))

        handles.append(module.register_forward_hook(hook))
    try:
        yield calls, indexers
    finally:
        for h in handles:
            h.remove()


def reference_selection(indexer, hidden, cos, sin) -> torch.Tensor:
    """(Q, K) bool: the keys each query of a padding-free prefill selects (batch row 0)."""
    hidden, cos, sin = hidden[0].double(), cos[0].double(), sin[0].double()
    n, d, r = indexer.index_n_heads, indexer.index_head_dim, indexer.compress_ratio
    qk = hidden @ indexer.index_qk_proj.weight.double().T
    length = qk.shape[0]
    q = _rope(_rms(qk[:, : n * d].view(length, n, d), indexer.q_layernorm), cos[:, None], sin[:, None])
    keys = qk[:, n * d :]
    out = torch.zeros(length, length, dtype=torch.bool)
    for i in range(length):
        blocks = (i + 1) // r
        if blocks:
            pooled = _rms(keys[: blocks * r].view(blocks, r, d).mean(dim=1), indexer.k_layernorm)
            starts = torch.arange(blocks) * r
            pooled = _rope(pooled, cos[starts], sin[starts])
            scores = torch.relu(q[i] @ pooled.T).sum(dim=0) / d**0.5  # (blocks,)
            top = scores.topk(min(indexer.token_budget // r, blocks)).indices
            for b in top.tolist():
                out[i, b * r : (b + 1) * r] = True
        out[i, blocks * r : i + 1] = True
    return out
