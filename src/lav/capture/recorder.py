"""A recording attention implementation, installed through transformers' attention interface.

It wraps the backend the model already runs (sdpa, eager, flash): the model's output is whatever
that backend returns for the same arguments, so capture on/off leaves logits bit-identical. Beside
it, the recorder computes only the statistics asked for from the real post-RoPE queries and keys:
- vision blocks: attention each patch receives, per head, per ``cu_seqlens`` chunk (image, video
  frame, or Qwen2.5-VL window), in O(N) memory (`received`);
- decoder layers: full attention rows (per head) of the queries at or after ``rows_from``: in
  prefill the prompt's last position (it produces the first answer token), in each decode step the
  single new query against the whole KV cache;
- beside each decoder row, which keys the mask let through (for Qwen4-Exp's indexed attention that
  is the QSA indexer's selection, which transformers folds into the mask before the call);
- on request, the largest activations of each prompt position's hidden state as the decoder layer's
  attention reads it (after the layer's input RMSNorm), for the hidden-state sink rule
  (`lav.methods.sink`): a forward pre-hook, O(positions) memory.
"""

from __future__ import annotations

import itertools
import sys
import threading
import weakref
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import CaptureError, UnsupportedModelError
from ..models import ModelParts, inspect_model, unwrap
from . import compat
from .colsums import attention_with_lse, received

_names = itertools.count(1)
#: How many of a position's largest |hidden| dimensions a recording keeps (`Recording.massive`).
MASSIVE_TOPK = 4
# The attention registries are process-wide dicts; registering and removing a name happen under
# this lock so two captures never interleave a half-done registration.
_REGISTRY_LOCK = threading.Lock()
_MODEL_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()


def model_lock(model: nn.Module) -> threading.RLock:
    """The lock that serialises captures of one model (also under its PEFT wrapper).

    Capture switches the model's attention implementation for the duration of a run: a second
    thread running the same model meanwhile would record into the first one's recording. Re-entrant,
    so an analysis can hold it across capture, generate and `disable_adapter()`.
    """
    base = unwrap(model)
    with _REGISTRY_LOCK:
        lock = _MODEL_LOCKS.get(base)
        if lock is None:
            lock = _MODEL_LOCKS[base] = threading.RLock()
        return lock


@dataclass
class Recording:
    """What one capture context saw. Plain tensors; turned into maps by `lav.capture.maps`."""

    parts: ModelParts
    vision_blocks: tuple[int, ...]
    decoder_layers: tuple[int, ...]
    rows_from: int | None
    backend: str = ""
    #: Absolute query positions whose rows are recorded (None: every one from ``rows_from`` on).
    rows_at: frozenset[int] | None = None
    #: block -> per-call chunks of received attention, (H, chunk_len) float32, in call order.
    vision: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    #: layer -> absolute query position -> attention row (B, H, K) float32 over all keys then present.
    rows: dict[int, dict[int, torch.Tensor]] = field(default_factory=dict)
    #: layer -> absolute query position -> keys the mask allowed (B, 1|H, K) bool, beside each row.
    allowed: dict[int, dict[int, torch.Tensor]] = field(default_factory=dict)
    #: layer -> (values, dims), each (B, S, MASSIVE_TOPK): the largest |x_d| of every prompt position's
    #: attention input x (the layer's input RMSNorm output) and their dimensions; prefill only, CPU.
    massive: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    methods: set[str] = field(default_factory=set)
    #: Views computed from the recording (`lav.capture.views`), kept for the other batch items.
    views: dict[Any, Any] = field(default_factory=dict)
    _seen: dict[int, int] = field(default_factory=dict)

    def reset(self) -> None:
        """Forget everything recorded so far (e.g. between two forwards in one context)."""
        self.vision = {b: [] for b in self.vision_blocks}
        self.rows = {layer: {} for layer in self.decoder_layers}
        self.allowed = {layer: {} for layer in self.decoder_layers}
        self.massive = {}
        self._seen = {}
        self.methods = set()
        self.views = {}


def _massive_hook(rec: Recording, layer: int) -> Callable:
    """Forward pre-hook on a decoder attention module: keep the prefill's largest |hidden| dims."""

    def hook(module, args, kwargs):
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3 or hidden.shape[1] < 2:
            return None  # a decode step (one new position): the prompt's positions are recorded
        with torch.no_grad():
            k = min(MASSIVE_TOPK, hidden.shape[-1])
            # |x| in the model's dtype (exact), then only the kept values, in float32 on the CPU
            # (B x S x 4 numbers; the sink rule indexes them with CPU positions, whatever the device).
            values, dims = hidden.detach().abs().topk(k, dim=-1)
            rec.massive[layer] = (values.float().cpu(), dims.cpu())
        return None

    return hook


def _decoder_rows(
    rec: Recording,
    layer: int,
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    mask: torch.Tensor | None,
    scaling: float,
    kwargs: dict,
) -> None:
    if kwargs.get("s_aux") is not None or kwargs.get("softcap") is not None:
        raise UnsupportedModelError("attention sinks / soft-capping are not checked by lav")
    if getattr(module, "sliding_window", None) is not None or kwargs.get("sliding_window") is not None:
        raise UnsupportedModelError("sliding-window decoder attention is not checked by lav")
    q_len, k_len = query.shape[2], key.shape[2]
    # Query positions follow the calls: a call with no past (K == Q) starts a new sequence.
    start = 0 if k_len == q_len else rec._seen.get(layer, 0)
    rec._seen[layer] = start + q_len
    first = rec.rows_from if rec.rows_from is not None else start + q_len
    local = [
        i for i in range(q_len) if start + i >= first and (rec.rows_at is None or start + i in rec.rows_at)
    ]
    if not local:
        return
    groups = query.shape[1] // key.shape[1]
    # float32 at least; a float64 model keeps float64, so its maps are as exact as the model.
    compute = torch.promote_types(query.dtype, torch.float32)
    q = query[:, :, local].to(compute)
    k = key.to(compute)
    if groups > 1:
        k = k.repeat_interleave(groups, dim=1)
    scores = torch.matmul(q, k.transpose(-1, -2)) * scaling  # [batch, head, row, key]
    bias, allowed = row_mask(mask, local, start, k_len, scores)
    probs = torch.softmax(scores + bias, dim=-1)
    for j, i in enumerate(local):
        rec.rows[layer][start + i] = probs[:, :, j]
        rec.allowed[layer][start + i] = allowed[:, :, j]


def row_mask(
    mask: torch.Tensor | None, local: Sequence[int], start: int, k_len: int, like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Additive bias (B|1, 1|H, R, K) for the recorded rows, from whatever mask the backend got, and
    the keys it allows (bool, same shape)."""
    neg = torch.finfo(like.dtype).min
    positions = torch.tensor([start + i for i in local], device=like.device)
    causal = torch.arange(k_len, device=like.device)[None, :] <= positions[:, None]  # (R, K)
    if mask is None:
        # sdpa's is_causal path and flash pass no mask: causality is ours to apply.
        allowed = causal[None, None]
    elif mask.dim() == 4:
        m = mask[:, :, list(local), :k_len]
        if m.dtype == torch.bool:
            allowed = m
        else:
            # Eager masks write their dtype's minimum on masked keys (transformers' causal mask and
            # Qwen4-Exp's indexer alike); compare in that dtype, where float32's would miss it.
            return m.to(like.dtype).clamp_min(neg), m > torch.finfo(m.dtype).min
    elif mask.dim() == 2:
        # flash backends get the 2-D padding mask: valid keys, and causality on top.
        allowed = mask[:, None, None, :k_len].bool() & causal[None, None]
    else:
        raise CaptureError(f"unexpected attention mask of shape {tuple(mask.shape)}")
    zero = torch.zeros((), dtype=like.dtype, device=like.device)
    return torch.where(allowed, zero, zero + neg), allowed


def _vision_received(
    rec: Recording,
    block: int,
    query: torch.Tensor,
    key: torch.Tensor,
    scaling: float,
    kwargs: dict,
    lse: torch.Tensor | None = None,
):
    cu = kwargs.get("cu_seq_lens_q")
    q, k = query[0], key[0]  # (H, S, D)
    rows = None if lse is None else lse[0]  # (H, S): the forward's, for the one chunk of an sdpa call
    bounds = [0, q.shape[1]] if cu is None else [int(x) for x in cu.tolist()]
    for lo, hi in itertools.pairwise(bounds):
        if hi > lo:
            values, method = received(
                q[:, lo:hi], k[:, lo:hi], scaling, lse=None if rows is None else rows[:, lo:hi]
            )
            rec.vision[block].append(values)
            rec.methods.add(method)


#: Keyword arguments transformers' vision attention passes that leave sdpa a plain attention call.
_PLAIN_KWARGS = frozenset({"attention_mask", "dropout", "is_causal", "scaling", "output_router_logits"})


def _plain_call(module: nn.Module, query, key, value, args: tuple, kwargs: dict) -> bool:
    """Whether the sdpa backend would run this call as plain attention (no mask, not causal, no
    dropout, no GQA, no gradient): the case `attention_with_lse` reproduces."""
    is_causal = kwargs.get("is_causal")
    if is_causal is None:
        is_causal = getattr(module, "is_causal", True)
    needs_grad = torch.is_grad_enabled() and (query.requires_grad or key.requires_grad or value.requires_grad)
    return (
        not args
        and kwargs.keys() <= _PLAIN_KWARGS
        and kwargs.get("attention_mask") is None
        and kwargs.get("scaling") is not None
        and not kwargs.get("dropout")
        and not is_causal
        and query.dim() == 4
        and query.shape[:2] == key.shape[:2] == value.shape[:2]
        and not needs_grad
    )


class Backend:
    """The attention backend the model runs (``name``), callable as transformers' attention functions
    are: each call goes to the function that backend runs for the module (for "eager" the module's
    own modeling file's, transformers' default), looked up once per module type."""

    def __init__(self, name: str):
        self.name = name
        self._functions: dict[type, Callable] = {}

    def function(self, module: nn.Module) -> Callable:
        fn = self._functions.get(type(module))
        if fn is None:
            if self.name == "eager":
                # Each modeling file has its own eager function (transformers' default for "eager").
                fn = sys.modules[type(module).__module__].eager_attention_forward
            else:
                fn = compat.ALL_ATTENTION_FUNCTIONS[self.name]
            self._functions[type(module)] = fn
        return fn

    def __call__(self, module: nn.Module, query, key, value, *args, **kwargs):
        return self.function(module)(module, query, key, value, *args, **kwargs)


def _make_recorder(rec: Recording, backend: Backend, roles: dict[int, tuple[str, int]]) -> Callable:
    def record(module, query, key, value, *args, **kwargs):
        fn = backend.function(module)
        role = roles.get(id(module))
        if role is None:
            return fn(module, query, key, value, *args, **kwargs)
        mask = args[0] if args else kwargs.get("attention_mask")
        scaling = kwargs.get("scaling")
        if scaling is None:
            scaling = getattr(module, "scaling", None) or query.shape[-1] ** -0.5
        lse = None
        if (
            role[0] == "vision"
            and backend.name == "sdpa"
            and _plain_call(module, query, key, value, args, kwargs)
        ):
            # The fused op the sdpa backend runs also yields each row's log-sum-exp: the edge map
            # then needs only its folded pass (used where its output is the backend's, bit for bit).
            out, lse = attention_with_lse(
                query, key, value, scaling, lambda q, k, v: fn(module, q, k, v, *args, **kwargs)
            )
        else:
            out = fn(module, query, key, value, *args, **kwargs)
        with torch.no_grad():
            kind, index = role
            if kind == "vision":
                _vision_received(rec, index, query.detach(), key.detach(), scaling, kwargs, lse)
            else:
                _decoder_rows(rec, index, module, query.detach(), key.detach(), mask, scaling, kwargs)
        return out

    return record


_SUPPORTED_BACKENDS = ("sdpa", "eager", "flash_attention_2", "flash_attention_3", "flash_attention_4")


@contextmanager
def override(
    model: nn.Module,
    attention: Callable[[Backend], Callable],
    modules: Sequence[nn.Module],
    purpose: str = "capture",
) -> Iterator[Backend]:
    """While inside: ``modules`` (attention modules of ``model``) run ``attention(backend)``, an
    attention function built for the one backend their configs select, and yield that backend.

    The function is registered in transformers' attention and mask registries (the mask as the
    backend's own) under a fresh name, and exactly the configs of ``modules`` point at it; on exit
    the configs get back exactly what they held and the name leaves both registries, also when the
    block raises. Holds the model's lock (`model_lock`) throughout and the registry lock while it
    registers or removes. ``purpose`` names what needs it in the error for an unsupported backend.
    """
    with model_lock(model):
        configs = {id(m.config): m.config for m in modules}
        backends = {compat.get_attn_implementation(c) or "eager" for c in configs.values()}
        if len(backends) != 1 or not backends <= set(_SUPPORTED_BACKENDS):
            raise UnsupportedModelError(
                f"attention implementation {sorted(backends)} is not supported for {purpose}; "
                f"load the model with attn_implementation= one of {', '.join(_SUPPORTED_BACKENDS)}"
            )
        backend = Backend(backends.pop())
        function = attention(backend)
        # A name containing "flash" keeps transformers on its varlen (cu_seqlens) vision path.
        name = f"lav{next(_names)}_{backend.name}"
        saved = {key: compat.saved_attn_implementation(cfg) for key, cfg in configs.items()}
        try:
            with _REGISTRY_LOCK:
                compat.register_attention(name, function, compat.ALL_MASK_ATTENTION_FUNCTIONS[backend.name])
            for cfg in configs.values():
                compat.set_attn_implementation(cfg, name)
            yield backend
        finally:
            for key, cfg in configs.items():
                compat.set_attn_implementation(cfg, saved[key])
            with _REGISTRY_LOCK:
                compat.unregister_attention(name)


@contextmanager
def capture(
    model: nn.Module,
    vision_blocks: Sequence[int] = (),
    decoder_layers: Sequence[int] = (),
    rows_from: int | None = None,
    hidden_layers: Sequence[int] = (),
    parts: ModelParts | None = None,
    rows_at: Collection[int] | None = None,
) -> Iterator[Recording]:
    """Record attention statistics while the model runs inside the ``with`` block.

    ``vision_blocks`` index the vision tower's blocks; ``decoder_layers`` index its full-attention
    decoder layers (for Qwen3.5 the n-th full-attention layer, not the n-th layer). Rows are recorded
    for queries at absolute positions ``>= rows_from`` (None: none). ``hidden_layers`` (decoder layer
    indices as ``decoder_layers``) get `Recording.massive`. On exit every registration, hook and
    config change is undone, also when the block raises. ``parts``: ``inspect_model(model)`` when the
    caller holds it already (a `Visualizer` does; found again each call otherwise, a walk of every
    module that costs as much as the demo model's forward at batch 1). ``rows_at``: of those, only
    these absolute positions (a forced answer's coordinate rows are known before the forward: the
    rows of the other answer tokens would be computed, stored and never read).
    """
    with model_lock(model):
        parts = inspect_model(model) if parts is None else parts
        at = None if rows_at is None else frozenset(int(p) for p in rows_at)
        rec = Recording(parts, tuple(vision_blocks), tuple(decoder_layers), rows_from, rows_at=at)
        rec.reset()
        roles: dict[int, tuple[str, int]] = {}
        for b in rec.vision_blocks:
            roles[id(parts.vision_attention[b])] = ("vision", b)
        for layer in rec.decoder_layers:
            roles[id(parts.decoder_attention[layer])] = ("decoder", layer)
        hooks = []
        try:
            with override(
                model,
                lambda backend: _make_recorder(rec, backend, roles),
                (*parts.vision_attention, *parts.decoder_attention),
            ) as backend:
                rec.backend = backend.name
                for layer in hidden_layers:
                    hooks.append(
                        parts.decoder_attention[layer].register_forward_pre_hook(
                            _massive_hook(rec, layer), with_kwargs=True
                        )
                    )
                yield rec
        finally:
            for handle in hooks:
                handle.remove()
