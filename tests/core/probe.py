"""Test-only ground truth, independent of lav's capture code.

`QKProbe` registers its own attention function that keeps the q/k every attention call receives
(per module, per call) and delegates to sdpa; references are then full softmax in float64.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager

import peft
import torch
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, AttentionInterface

_n = itertools.count()


@contextmanager
def qk_probe(model, modules):
    """Record (query, key, scaling, kwargs) of every call of the given attention modules."""
    calls = {id(m): [] for m in modules}
    sdpa = ALL_ATTENTION_FUNCTIONS["sdpa"]

    def probe(module, query, key, value, *args, **kwargs):
        if id(module) in calls:
            calls[id(module)].append((query.detach().clone(), key.detach().clone(), kwargs.get("scaling")))
        return sdpa(module, query, key, value, *args, **kwargs)

    name = f"testprobe{next(_n)}"
    AttentionInterface.register(name, probe)
    AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
    configs = {id(m.config): m.config for m in modules}
    saved = {k: c._attn_implementation_internal for k, c in configs.items()}
    try:
        for c in configs.values():
            c._attn_implementation_internal = name
        yield [calls[id(m)] for m in modules]
    finally:
        for k, c in configs.items():
            c._attn_implementation_internal = saved[k]
        AttentionInterface._global_mapping.pop(name)
        AttentionMaskInterface._global_mapping.pop(name)


def received_reference(query, key, scaling):
    """Column sums of softmax(q k^T * scaling), full matrix in float64: (1, H, n, D) -> (H, n)."""
    q = query[0].double()
    k = key[0].double()
    probs = torch.softmax(q @ k.transpose(-1, -2) * scaling, dim=-1)
    return probs.sum(dim=-2)


def raster_from_block_major(values, t, h, w, merge):
    """(H, t*h*w) block-major -> (H, t, h, w), by the formula in shared/DESIGN.md, written out as loops."""
    out = torch.zeros(values.shape[0], t, h, w, dtype=values.dtype)
    for ti in range(t):
        for row in range(h):
            for col in range(w):
                bh, i = divmod(row, merge)
                bw, j = divmod(col, merge)
                s = ((ti * (h // merge) + bh) * (w // merge) + bw) * merge * merge + i * merge + j
                out[:, ti, row, col] = values[:, s]
    return out


def with_lora(model, seed=1):
    """Wrap with a LoRA whose B matrices are non-zero, on vision qkv and decoder q/k/v projections."""
    torch.manual_seed(seed)
    cfg = peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["qkv", "q_proj", "k_proj", "v_proj"], init_lora_weights=False
    )
    return peft.get_peft_model(model, cfg).eval()
