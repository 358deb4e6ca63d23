"""Attention each key *receives* (column sums of softmax(QK^T * scale)) without an N x N matrix.

With the row log-sum-exp ``lse_i`` of the forward pass,
``r_j = sum_i exp(s * q_i.k_j - lse_i)`` is itself an attention-like reduction with the roles of
queries and keys swapped, which a fused attention kernel that returns its log-sum-exp computes in
O(N) memory, by one of two exact passes:

- weighted: the keys attend over the queries, at the queries' own width and scale, and the value
  is the weight ``w_i = exp(m - lse_i)`` (``m`` the smallest ``lse_i``, a stride-0 tensor); then
  ``r_j = out_j * exp(lse'_j - m)`` with the kernel's own log-sum-exp ``lse'_j``. As much work as
  one attention call, no copies. It needs the weights to stay normal float32 numbers: the spread of
  the rows' log-sum-exp within `WEIGHT_RANGE`.
- folded: the bias in one extra head dimension (``q' = [s*q, -lse]``, ``k' = [k, 1]``, scale 1), so
  that the kernel's log-sum-exp is ``log r_j`` at any spread; a wider head (padded to a multiple of
  8) and two copies.

Such kernels are private torch ops: each pass is feature-detected and checked against the exact
chunked method before first use on a (device type, head size); the chunked method is exact and
portable, in O(chunk * N) memory.

The row log-sum-exp comes from the forward itself where it can (`attention_with_lse`: the fused op
sdpa dispatches to, run by the recorder, kept only where its output is the backend's bit for bit);
elsewhere the kernel computes it in a pass of its own.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger(__name__)

#: Bytes of scores one chunk of the exact method may hold.
CHUNK_BYTES = 64 * 2**20
#: Bytes of one (heads, N, D + 8) float32 temporary of the fused method: heads are processed in
#: groups this size. The weighted pass holds one such temporary (the kernel's discarded output), the
#: folded pass three (folded queries, folded keys, the output). At N = 17,052 one head already takes
#: 5.5 MB: groups shrink to a single head and the extra peak is ~5 MB (weighted), against ~1.6 GB
#: that a forward of a 4-block 8B-width vision tower adds. A smaller value does not lower that
#: further; a larger one only saves kernel launches, which matter at small N (a few hundred
#: patches), where the whole tensor is a few MB anyway.
HEAD_GROUP_BYTES = 4 * 2**20
#: Value width tried first: only one column of the kernel's output is used (none in the folded and
#: log-sum-exp passes), so the narrowest width the kernel accepts is the cheapest (CPU's flash kernel
#: insists on q's width).
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
    return like.new_zeros(1).expand(like.shape[0], n, width or like.shape[-1])


def _kernel_cpu(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0), 0.0, False, scale=scale
    )
    return out[0], lse[0]


def _kernel_cuda(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    out = torch.ops.aten._scaled_dot_product_efficient_attention(
        q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0), None, True, 0.0, False, scale=scale
    )
    # The kernel pads the log-sum-exp to a multiple of its block size.
    return out[0][0], out[1][0, :, : q.shape[1]]


#: (q, k, v, scale) -> (attention output, row log-sum-exp): (H, N_q, D), (H, N_k, D), (H, N_k, D_v)
#: -> (H, N_q, D_v), (H, N_q); a fused op that keeps the log-sum-exp it computes.
Kernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]]

_FUSED: dict[str, tuple[str, Kernel]] = {
    "cpu": ("aten._scaled_dot_product_flash_attention_for_cpu", _kernel_cpu),
    "cuda": ("aten._scaled_dot_product_efficient_attention", _kernel_cuda),
}
#: Device types with a fused op lav checks (others take the exact chunks; `lav.capture.memory`).
FUSED_DEVICE_TYPES = frozenset(_FUSED)

#: Heads whose column sums vary by less than this share of their largest are computed again by the
#: folded pass. The weighted pass's result carries the kernel's log-sum-exp, about log N in size, so
#: its relative error is ~1e-6 (the folded pass's, whose log-sum-exp is log r_j, ~1e-7); a map that
#: is min-max normalised divides that error by its relative range, and a head whose sums vary by 1%
#: would show it at 1e-4 of the scale. Such nearly flat heads are rare in trained models.
FLAT = 0.05
#: Largest spread (max - min, per head) of the rows' log-sum-exp that the weighted pass takes: its
#: weights exp(min - lse) then stay normal float32 numbers (the smallest is e^-87), with room to
#: spare for the kernel's sums. Wider spreads (one query far more peaked than another) go to the
#: folded pass, which carries the bias in the exponent.
WEIGHT_RANGE = 60.0


def _weighted(kernel: Kernel, q, k, rows: torch.Tensor, scale: float, width: int | None) -> torch.Tensor:
    """``r_j = sum_i softmax_i(s k_j.q_i) w_i * exp(lse'_j)`` with ``w_i = exp(m - lse_i)``: the keys
    attend over the queries at the queries' own width and scale (no copies), the bias rides on a
    stride-0 value; ``lse'_j`` is the kernel's own. The folded pass's heads are wider (80 for 72)
    and need two copies."""
    low = rows.amin(dim=-1, keepdim=True)
    w = torch.exp(low - rows)  # (G, N_q) in (0, 1]
    value = w.unsqueeze(-1).expand(*w.shape, width or q.shape[-1])
    if q.device.type != "cpu":
        # GPU kernels may insist on a unit stride in the last dimension: a real (G, N_q, width) copy.
        value = value.contiguous()
    out, lse_k = kernel(k, q, value, scale)
    return (lse_k + out[..., 0].log() - low).exp()


def _folded(kernel: Kernel, q, k, rows: torch.Tensor, scale: float, width: int | None) -> torch.Tensor:
    """``log r_j`` as the kernel's log-sum-exp of keys attending over queries whose extra column
    carries the bias: ``q' = [s*q, -lse, 0...]``, ``k' = [k, 1, 0...]``, scale 1. Exact at any spread
    of the rows' log-sum-exp; one head width wider than the weighted pass, and two copies."""
    groups, n, dim = q.shape
    n_k = k.shape[1]
    # Fused kernels are fastest (and some only work) with head sizes that are multiples of 8.
    folded = dim + 1 + (-(dim + 1)) % 8
    q_fold = q.new_zeros(groups, n, folded)
    q_fold[..., :dim].copy_(q).mul_(scale)
    q_fold[..., dim] = -rows
    k_fold = k.new_zeros(groups, n_k, folded)
    k_fold[..., :dim].copy_(k)
    k_fold[..., dim] = 1.0
    return kernel(k_fold, q_fold, _zeros(q_fold, n, width), 1.0)[1].exp()


#: The passes, in the order they are preferred.
_PASSES: dict[str, Callable[..., torch.Tensor]] = {"weighted": _weighted, "folded": _folded}


def _received_fused(
    kernel: Kernel,
    widths: dict[str, int | None],
    q: torch.Tensor,
    k: torch.Tensor,
    scale: float,
    lse: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per head group: the rows' log-sum-exp (``lse`` (H, N_q), the forward's, else one pass of the
    kernel), then the weighted pass where its spread allows and it is in ``widths`` (the checked
    passes and their value widths), else the folded one, else the exact chunks."""
    heads, n, dim = q.shape
    n_k = k.shape[1]
    group = max(1, HEAD_GROUP_BYTES // (max(n, n_k) * (dim + 8) * 4))
    out = torch.empty(heads, n_k, dtype=torch.float32, device=q.device)
    for h in range(0, heads, group):
        qh, kh = q[h : h + group].float(), k[h : h + group].float()
        if lse is not None:
            rows = lse[h : h + group].float()
        else:
            rows = kernel(qh, kh, _zeros(kh, n_k, widths.get("lse")), scale)[1]
        spread = (rows.amax(dim=-1) - rows.amin(dim=-1)).max().item() if n else 0.0
        values = None
        if "weighted" in widths and spread <= WEIGHT_RANGE:
            values = _PASSES["weighted"](kernel, qh, kh, rows, scale, widths["weighted"])
            top = values.amax(dim=-1)
            if "folded" in widths and ((top - values.amin(dim=-1)) < FLAT * top).any().item():
                values = None  # too flat for the weighted pass's precision: the folded one below
        if values is not None:
            out[h : h + group] = values
        elif "folded" in widths:
            out[h : h + group] = _PASSES["folded"](kernel, qh, kh, rows, scale, widths["folded"])
        else:
            out[h : h + group] = received_chunked(qh, kh, scale)
    return out


@functools.cache
def _fused(device_type: str, head_dim: int) -> tuple[str, Kernel, dict[str, int | None]] | None:
    """The fused op usable on ``device_type`` and the passes checked with it, each with its value
    width (None: q's), or None.

    Each pass is checked once against the exact method, the narrow value width first, then q's own;
    the weighted pass on inputs whose rows' log-sum-exp spread is within `WEIGHT_RANGE`, the folded
    one on inputs with a spread beyond it.
    """
    entry = _FUSED.get(device_type)
    if entry is None:
        return None
    name, kernel = entry
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 97, head_dim, generator=gen).to(device_type)
    k = torch.randn(2, 97, head_dim, generator=gen).to(device_type)
    scale = head_dim**-0.5
    steep = q.clone()
    steep[:, ::3] *= 40  # a few very peaked rows: the spread of the log-sum-exp beyond WEIGHT_RANGE
    widths: dict[str, int | None] = {}
    for pass_name, inputs in (("weighted", q), ("folded", steep)):
        ref = received_chunked(inputs, k, scale, dtype=torch.float64)
        for width in (NARROW_VALUE, None):
            try:
                rows = kernel(inputs, k, _zeros(k, k.shape[1], width), scale)[1]
                got = _PASSES[pass_name](kernel, inputs, k, rows, scale, width).double()
            except (RuntimeError, NotImplementedError, AttributeError) as exc:
                log.info(
                    "fused op %s, %s pass, value width %s: unavailable on %s: %s",
                    name,
                    pass_name,
                    width,
                    device_type,
                    exc,
                )
                continue
            err = ((got - ref).abs() / ref.abs().clamp_min(1e-12)).max().item()
            if err < 1e-4:
                widths[pass_name] = width
                widths.setdefault("lse", width)
                break
            log.warning(
                "fused op %s, %s pass (value width %s), disagrees with the exact method on %s (rel. error %.2e); not used",
                name,
                pass_name,
                width,
                device_type,
                err,
            )
    return (name, kernel, widths) if widths else None


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
                name, kernel, widths = found
                values = _received_fused(kernel, widths, q, k, scale, lse)
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
