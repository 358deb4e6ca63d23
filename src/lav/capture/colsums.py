"""Attention each key *receives* (column sums of softmax(QK^T * scale)) without an N x N matrix.

With the row log-sum-exp ``lse_i`` of the forward pass,
``r_j = sum_i exp(s * q_i.k_j - lse_i)`` is itself an attention-like reduction with the roles of
queries and keys swapped. Folding the bias into one extra head dimension
(``q' = [s*q, -lse]``, ``k' = [k, 1]``, scale 1) lets a fused attention kernel that returns
log-sum-exp compute ``log r_j`` directly, in O(N) memory. Such kernels are private torch ops:
each is feature-detected and checked against the exact chunked method before first use on a
(device type, dtype); the chunked method is exact and portable, in O(chunk * N) memory.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

Lse = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]

#: Bytes of scores one chunk of the exact method may hold.
CHUNK_BYTES = 64 * 2**20
#: Bytes of one (heads, N, D) temporary of the fused method: heads are processed in groups this big,
#: so its extra memory stays a small share of the block's own activations at any N.
HEAD_GROUP_BYTES = 16 * 2**20


def received_chunked(q: torch.Tensor, k: torch.Tensor, scale: float, dtype=torch.float32) -> torch.Tensor:
    """Exact column sums by softmax over query chunks. ``q, k``: (H, N, D) -> (H, N) in ``dtype``."""
    heads, n, _ = q.shape
    q = q.to(dtype)
    k = k.to(dtype)
    out = torch.zeros(heads, k.shape[1], dtype=dtype, device=q.device)
    chunk = max(1, CHUNK_BYTES // (heads * k.shape[1] * q.element_size()))
    for start in range(0, n, chunk):
        scores = torch.matmul(q[:, start : start + chunk], k.transpose(1, 2)) * scale
        out += torch.softmax(scores, dim=-1).sum(dim=1)
    return out


def _lse_cpu(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    # (H, N, D) -> (H, N). The value only has to match the head size; its output is discarded.
    value = q.new_zeros(1).expand(1, *k.shape)
    _, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q.unsqueeze(0), k.unsqueeze(0), value, 0.0, False, scale=scale
    )
    return lse[0]


def _lse_cuda(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    value = q.new_zeros(1).expand(1, *k.shape)
    out = torch.ops.aten._scaled_dot_product_efficient_attention(
        q.unsqueeze(0), k.unsqueeze(0), value, None, True, 0.0, False, scale=scale
    )
    # The kernel pads the log-sum-exp to a multiple of its block size.
    return out[1][0, :, : q.shape[1]]


_FUSED: dict[str, tuple[str, Lse]] = {
    "cpu": ("aten._scaled_dot_product_flash_attention_for_cpu", _lse_cpu),
    "cuda": ("aten._scaled_dot_product_efficient_attention", _lse_cuda),
}


def _pad8(x: torch.Tensor) -> torch.Tensor:
    # Fused kernels are fastest (and some only work) with head sizes that are multiples of 8.
    pad = (-x.shape[-1]) % 8
    return F.pad(x, (0, pad)) if pad else x


def _received_fused(lse_fn: Lse, q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    heads, n, dim = q.shape
    group = max(1, HEAD_GROUP_BYTES // (max(n, k.shape[1]) * (dim + 8) * 4))
    out = torch.empty(heads, k.shape[1], dtype=torch.float32, device=q.device)
    for h in range(0, heads, group):
        qh = q[h : h + group].float()
        kh = k[h : h + group].float()
        lse = lse_fn(qh, kh, scale)  # (h, N_q): the forward's row normalisers
        q_fold = _pad8(torch.cat([qh * scale, -lse.unsqueeze(-1)], dim=-1))
        k_fold = _pad8(torch.cat([kh, torch.ones_like(kh[..., :1])], dim=-1))
        out[h : h + group] = lse_fn(k_fold, q_fold, 1.0).exp()
    return out


@functools.cache
def fused_method(device_type: str, head_dim: int) -> str | None:
    """The fused log-sum-exp op usable on ``device_type``, or None: checked once against the exact method."""
    entry = _FUSED.get(device_type)
    if entry is None:
        return None
    name, fn = entry
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 97, head_dim, generator=gen).to(device_type)
    k = torch.randn(2, 97, head_dim, generator=gen).to(device_type)
    scale = head_dim**-0.5
    try:
        got = _received_fused(fn, q, k, scale).double()
    except (RuntimeError, NotImplementedError, AttributeError) as exc:
        log.info("fused received-attention op %s unavailable on %s: %s", name, device_type, exc)
        return None
    ref = received_chunked(q, k, scale, dtype=torch.float64)
    err = ((got - ref).abs() / ref.abs().clamp_min(1e-12)).max().item()
    if not err < 1e-4:
        log.warning(
            "fused op %s disagrees with the exact method on %s (rel. error %.2e); not used",
            name,
            device_type,
            err,
        )
        return None
    return name


def received(
    q: torch.Tensor, k: torch.Tensor, scale: float, method: str = "auto"
) -> tuple[torch.Tensor, str]:
    """Attention each key receives, summed over queries: ``(H, N_q, D), (H, N_k, D) -> (H, N_k)`` float32.

    ``method``: ``"auto"`` (fused where checked, else exact chunks), ``"fused"``, ``"chunked"``.
    Float64 inputs (a float64 model) take the exact method in float64 under ``"auto"``: whoever runs
    a model in float64 wants its maps to that precision, and the fused kernels reduce in float32.
    Returns the values and the method used. Never builds the (N_q, N_k) matrix at once.
    """
    with torch.no_grad():
        if method == "auto" and q.dtype == torch.float64:
            return received_chunked(q, k, scale, dtype=torch.float64), "chunked"
        if method in ("auto", "fused"):
            name = fused_method(q.device.type, q.shape[-1])
            if name is not None:
                return _received_fused(_FUSED[q.device.type][1], q, k, scale), name
            if method == "fused":
                raise RuntimeError(f"no checked fused attention op on {q.device.type}")
        if method not in ("auto", "fused", "chunked"):
            raise ValueError(f"unknown method {method!r}; use 'auto', 'fused' or 'chunked'")
        return received_chunked(q, k, scale), "chunked"
