"""Attention each key *receives* (column sums of softmax(QK^T * scale)) without an N x N matrix.

With the row log-sum-exp ``lse_i`` of the forward pass,
``r_j = sum_i exp(s * q_i.k_j - lse_i)`` is itself an attention-like reduction with the roles of
queries and keys swapped. Folding the bias into one extra head dimension
(``q' = [s*q, -lse]``, ``k' = [k, 1]``, scale 1) lets a fused attention kernel that returns
log-sum-exp compute ``log r_j`` directly, in O(N) memory. Such kernels are private torch ops:
each is feature-detected and checked against the exact chunked method before first use on a
(device type, dtype); the chunked method is exact and portable, in O(chunk * N) memory.

The row log-sum-exp comes from the forward itself where it can (`attention_with_lse`: the fused op
sdpa dispatches to, run by the recorder, kept only where its output is the backend's bit for bit);
elsewhere the fused method computes it in a pass of its own.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger(__name__)

#: (q, k, scale, value width or None for k's) -> the row log-sum-exp, (H, N_q, D), (H, N_k, D) -> (H, N_q).
Lse = Callable[[torch.Tensor, torch.Tensor, float, int | None], torch.Tensor]

#: Bytes of scores one chunk of the exact method may hold.
CHUNK_BYTES = 64 * 2**20
#: Bytes of one (heads, N, D + 8) float32 temporary of the fused method. The folded pass holds three
#: (folded queries, folded keys, the kernel's discarded output), so its extra memory is about
#: 3 x this at any N. At N = 17,052 one head already takes 5.5 MB: groups shrink to a single head
#: and the extra peak is ~16 MB, against ~1.6 GB that a forward of a 4-block 8B-width vision tower
#: adds. A smaller value does not lower that further; a larger one only saves kernel launches, which
#: matter at small N (a few hundred patches), where the whole tensor is a few MB anyway.
HEAD_GROUP_BYTES = 4 * 2**20
#: Value width tried first for the folded pass: its product with the attention is discarded, so the
#: narrowest width the kernel accepts is the cheapest (CPU's flash kernel insists on q's width).
NARROW_VALUE = 8


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


def _zeros(like: torch.Tensor, n: int, width: int | None) -> torch.Tensor:
    # A stride-0 value: its product with the attention is discarded, only the log-sum-exp is kept.
    return like.new_zeros(1).expand(1, like.shape[0], n, width or like.shape[-1])


def _lse_cpu(q: torch.Tensor, k: torch.Tensor, scale: float, width: int | None = None) -> torch.Tensor:
    _, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q.unsqueeze(0), k.unsqueeze(0), _zeros(k, k.shape[1], width), 0.0, False, scale=scale
    )
    return lse[0]


def _lse_cuda(q: torch.Tensor, k: torch.Tensor, scale: float, width: int | None = None) -> torch.Tensor:
    out = torch.ops.aten._scaled_dot_product_efficient_attention(
        q.unsqueeze(0), k.unsqueeze(0), _zeros(k, k.shape[1], width), None, True, 0.0, False, scale=scale
    )
    # The kernel pads the log-sum-exp to a multiple of its block size.
    return out[1][0, :, : q.shape[1]]


_FUSED: dict[str, tuple[str, Lse]] = {
    "cpu": ("aten._scaled_dot_product_flash_attention_for_cpu", _lse_cpu),
    "cuda": ("aten._scaled_dot_product_efficient_attention", _lse_cuda),
}


def _received_fused(
    lse_fn: Lse,
    q: torch.Tensor,
    k: torch.Tensor,
    scale: float,
    width: int | None = None,
    lse: torch.Tensor | None = None,
) -> torch.Tensor:
    """The folded pass, per head group; ``lse`` (H, N_q): the forward's row normalisers, else computed."""
    heads, n, dim = q.shape
    n_k = k.shape[1]
    # Fused kernels are fastest (and some only work) with head sizes that are multiples of 8; the
    # extra column carries the bias, the rest are zeros.
    folded = dim + 1 + (-(dim + 1)) % 8
    group = max(1, HEAD_GROUP_BYTES // (max(n, n_k) * folded * 4))
    out = torch.empty(heads, n_k, dtype=torch.float32, device=q.device)
    for h in range(0, heads, group):
        qh, kh = q[h : h + group], k[h : h + group]
        rows = lse[h : h + group].float() if lse is not None else lse_fn(qh.float(), kh.float(), scale, None)
        # q' = [q*s, -lse, 0...], k' = [k, 1, 0...]: written in place, no intermediate copies.
        q_fold = q.new_zeros(qh.shape[0], n, folded, dtype=torch.float32)
        q_fold[..., :dim].copy_(qh).mul_(scale)
        q_fold[..., dim] = -rows
        k_fold = k.new_zeros(kh.shape[0], n_k, folded, dtype=torch.float32)
        k_fold[..., :dim].copy_(kh)
        k_fold[..., dim] = 1.0
        out[h : h + group] = lse_fn(k_fold, q_fold, 1.0, width).exp()
        del q_fold, k_fold
    return out


@functools.cache
def _fused(device_type: str, head_dim: int) -> tuple[str, Lse, int | None] | None:
    """The fused op usable on ``device_type`` and its folded pass's value width (None: q's), or None.

    Checked once against the exact method; the narrow value width first, then q's own.
    """
    entry = _FUSED.get(device_type)
    if entry is None:
        return None
    name, fn = entry
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 97, head_dim, generator=gen).to(device_type)
    k = torch.randn(2, 97, head_dim, generator=gen).to(device_type)
    scale = head_dim**-0.5
    ref = received_chunked(q, k, scale, dtype=torch.float64)
    for width in (NARROW_VALUE, None):
        try:
            got = _received_fused(fn, q, k, scale, width).double()
        except (RuntimeError, NotImplementedError, AttributeError) as exc:
            log.info("fused op %s with value width %s unavailable on %s: %s", name, width, device_type, exc)
            continue
        err = ((got - ref).abs() / ref.abs().clamp_min(1e-12)).max().item()
        if err < 1e-4:
            return name, fn, width
        log.warning(
            "fused op %s (value width %s) disagrees with the exact method on %s (rel. error %.2e); not used",
            name,
            width,
            device_type,
            err,
        )
    return None


def fused_method(device_type: str, head_dim: int) -> str | None:
    """The fused log-sum-exp op usable on ``device_type``, or None: checked once against the exact method."""
    found = _fused(device_type, head_dim)
    return None if found is None else found[0]


def received(
    q: torch.Tensor,
    k: torch.Tensor,
    scale: float,
    method: str = "auto",
    lse: torch.Tensor | None = None,
) -> tuple[torch.Tensor, str]:
    """Attention each key receives, summed over queries: ``(H, N_q, D), (H, N_k, D) -> (H, N_k)`` float32.

    ``method``: ``"auto"`` (fused where checked, else exact chunks), ``"fused"``, ``"chunked"``.
    ``lse`` (H, N_q): each query's log-sum-exp from the forward (`attention_with_lse`); with it the
    fused method skips its own pass over the rows and runs only the folded one.
    Float64 inputs (a float64 model) take the exact method in float64 under ``"auto"``: whoever runs
    a model in float64 wants its maps to that precision, and the fused kernels reduce in float32.
    Returns the values and the method used. Never builds the (N_q, N_k) matrix at once.
    """
    with torch.no_grad():
        if method == "auto" and q.dtype == torch.float64:
            return received_chunked(q, k, scale, dtype=torch.float64), "chunked"
        if method in ("auto", "fused"):
            found = _fused(q.device.type, q.shape[-1])
            if found is not None:
                name, fn, width = found
                values = _received_fused(fn, q, k, scale, width, lse)
                return values, name if lse is None else f"{name} (forward's lse)"
            if method == "fused":
                raise RuntimeError(f"no checked fused attention op on {q.device.type}")
        if method not in ("auto", "fused", "chunked"):
            raise ValueError(f"unknown method {method!r}; use 'auto', 'fused' or 'chunked'")
        return received_chunked(q, k, scale), "chunked"


# The forward's log-sum-exp. The model's sdpa backend calls `scaled_dot_product_attention`, which
# dispatches to a fused kernel that computes each row's log-sum-exp and drops it. Calling that
# kernel ourselves keeps it, but only counts as the model's forward if its output is bit-identical
# to the backend's: checked on the first call of each class below, the verdict cached.


def _flash_cpu(q, k, v, scale):
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, False, scale=scale)
    return out, lse


def _flash_cuda(q, k, v, scale):
    out = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, False, False, scale=scale)
    return out[0], out[1]


def _efficient_cuda(q, k, v, scale):
    out = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, None, True, 0.0, False, scale=scale)
    return out[0], out[1]


def _cudnn_cuda(q, k, v, scale):
    out = torch.ops.aten._scaled_dot_product_cudnn_attention(
        q, k, v, None, True, 0.0, False, False, scale=scale
    )
    return out[0], out[1]


_WITH_LSE: dict[str, tuple[Callable, ...]] = {
    "cpu": (_flash_cpu,),
    # sdpa picks among these by dtype, head size and hardware; whichever matches bit for bit is it.
    "cuda": (_flash_cuda, _efficient_cuda, _cudnn_cuda),
}
#: Shape class -> the op whose output matched the backend's, or None (the backend runs, no lse).
_VERDICTS: dict[tuple, Callable | None] = {}
_VERDICTS_LOCK = threading.Lock()
#: Rows whose log-sum-exp is checked against float64 on the first call of a class.
_LSE_CHECK_ROWS = 64
#: Positions of a CPU call compared with the backend on the first call of a class.
CPU_CHECK_LEN = 512


def _shape_class(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> tuple:
    # What sdpa's kernel choice depends on, besides the shapes every call of a block shares.
    flags = tuple(
        getattr(torch.backends.cuda, f, lambda: None)()
        for f in ("flash_sdp_enabled", "mem_efficient_sdp_enabled", "math_sdp_enabled", "cudnn_sdp_enabled")
    )
    return (
        str(query.device),
        query.dtype,
        query.shape[1],
        key.shape[1],
        query.shape[-1],
        value.shape[-1],
        query.shape[2] == 1,
        flags,
        torch.are_deterministic_algorithms_enabled(),
    )


def _row_lse(query: torch.Tensor, key: torch.Tensor, scale: float, rows: int) -> torch.Tensor:
    q = query[0, :, :rows].double()
    return torch.logsumexp(q @ key[0].double().transpose(-1, -2) * scale, dim=-1)


def _pick(backend_out: torch.Tensor, query, key, value, scale) -> tuple[Callable | None, torch.Tensor | None]:
    rows = min(_LSE_CHECK_ROWS, query.shape[2])
    ref_lse = _row_lse(query, key, scale, rows)
    reasons = []
    for op in _WITH_LSE.get(query.device.type, ()):
        try:
            out, lse = op(query, key, value, scale)
        except (RuntimeError, NotImplementedError, AttributeError) as exc:
            reasons.append(f"{op.__name__}: {str(exc).splitlines()[0]}")
            continue
        out = out.transpose(1, 2).contiguous()
        if not (
            out.dtype == backend_out.dtype
            and out.shape == backend_out.shape
            and torch.equal(out, backend_out)
        ):
            reasons.append(f"{op.__name__}: output differs from the backend's")
            continue
        lse = _lse_view(lse, query.shape[2])
        err = (lse[0, :, :rows].double() - ref_lse).abs().max().item()
        if not err < 1e-3:
            reasons.append(f"{op.__name__}: log-sum-exp off by {err:.2e}")
            continue
        return op, lse
    log.warning(
        "no fused op reproduces the sdpa backend's vision attention output bit for bit on %s %s (%s); "
        "received attention computes its own log-sum-exp",
        query.device,
        query.dtype,
        "; ".join(reasons) or "none available",
    )
    return None, None


def _lse_view(lse: torch.Tensor, n: int) -> torch.Tensor:
    # (B, H, N) float32; some kernels pad N to their block size or add a trailing unit dimension.
    if lse.dim() == 4:
        lse = lse[..., 0]
    return lse[:, :, :n]


def attention_with_lse(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    scale: float,
    backend: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, Any]],
) -> tuple[tuple[torch.Tensor, Any], torch.Tensor | None]:
    """The sdpa backend's result for a plain (no mask, not causal, no dropout, no GQA) attention
    call, and each query's log-sum-exp (B, H, N_q) where a fused op gives that result bit for bit.

    ``query, key, value``: (B, H, N, D) as the backend gets them; ``backend(q, k, v)`` runs the
    backend itself and returns its ``(output (B, N, H, D), None)``. On the first call of a shape
    class both run and are compared (output bit for bit, the first rows' log-sum-exp against
    float64); from then on only the op runs where it matched, only the backend (log-sum-exp None)
    where it did not. On CPU the comparison runs on the call's first `CPU_CHECK_LEN` positions:
    sdpa's CPU kernel choice does not depend on the length, and a full extra call at 17,052 patches
    would cost as much as the folded pass saves in one block.
    """
    cls = _shape_class(query, key, value)
    with _VERDICTS_LOCK:
        known = cls in _VERDICTS
        op = _VERDICTS.get(cls)
    if not known:
        n = query.shape[2]
        if query.device.type == "cpu" and n > CPU_CHECK_LEN:
            q, k, v = (t[:, :, :CPU_CHECK_LEN] for t in (query, key, value))
        else:
            q, k, v = query, key, value
        checked = backend(q, k, v)
        with torch.no_grad():
            op, lse = _pick(checked[0], q, k, v, scale)
        with _VERDICTS_LOCK:
            _VERDICTS[cls] = op
        if op is not None and q is query:
            # This call's output stays the backend's own; the op only supplies the log-sum-exp.
            return checked, lse
    if op is None:
        return backend(query, key, value), None
    out, lse = op(query, key, value, scale)
    return (out.transpose(1, 2).contiguous(), None), _lse_view(lse, query.shape[2])
