"""Gradient-weighted focus (Chefer et al., ICCV 2021, decoder rule) on the backend the model runs.

For each coordinate digit d produced by the query at row r, ``g = d log p(d | row r) / d A_l`` (the
attention probabilities of decoder layer l); the digit's map is the mean over heads of
``max(0, g[r, image] * A_l[r, image])``. One extra forward with autograd: the model's parameters are
frozen for it, and in each chosen layer only the digit rows are recomputed differentiably
(``A = softmax(q_r . k * scale + mask)``, output ``A @ V`` in place of the backend's rows), so the
graph holds the chosen layers' digit rows and what lies downstream of them; the layers below the
first chosen one and the vision tower run as in inference. Never an N x N matrix, never eager; the
logits are kept for the digit rows only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from ..capture import Backend, override, row_mask
from ..errors import LavError
from ..result import Map
from .base import Item, MapMethod, Needs, Runner, Selection, merged_grid, minmax


@contextmanager
def _differentiable_rows(
    model: torch.nn.Module, parts, layers: Sequence[int], rows: list[int]
) -> Iterator[dict[int, torch.Tensor]]:
    """While inside: the chosen decoder layers' ``rows`` (absolute positions of a forward without
    cache) are recomputed with autograd; yields layer -> A (B, H, R, K), filled by the forward."""
    probs: dict[int, torch.Tensor] = {}
    roles = {id(parts.decoder_attention[layer]): layer for layer in layers}

    def differentiable(backend: Backend):
        def attention(module, query, key, value, *args, **kwargs):
            out, weights = backend(module, query, key, value, *args, **kwargs)
            layer = roles.get(id(module))
            if layer is None:
                return out, weights
            if query.shape[2] != key.shape[2]:
                raise LavError("gradient-weighted focus needs one forward without cache")
            mask = args[0] if args else kwargs.get("attention_mask")
            scaling = kwargs.get("scaling") or getattr(module, "scaling", None) or query.shape[-1] ** -0.5
            groups = query.shape[1] // key.shape[1]
            compute = torch.promote_types(query.dtype, torch.float32)
            k = key.to(compute).repeat_interleave(groups, dim=1)
            v = value.to(compute).repeat_interleave(groups, dim=1)
            scores = (
                torch.matmul(query[:, :, rows].to(compute), k.transpose(-1, -2)) * scaling
            )  # [b, h, row, key]
            bias, _ = row_mask(mask, rows, 0, key.shape[2], scores)
            a = torch.softmax(scores + bias, dim=-1)
            if a.requires_grad:
                a.retain_grad()
            else:  # the lowest chosen layer: nothing below it needs a gradient
                a.requires_grad_(True)
            probs[layer] = a
            out = out.clone()
            out[:, rows] = torch.matmul(a, v).transpose(1, 2).to(out.dtype)
            return out, weights

        return attention

    with override(model, differentiable, parts.decoder_attention, "gradient-weighted focus"):
        yield probs


@contextmanager
def _frozen(model: torch.nn.Module) -> Iterator[None]:
    """Parameters without gradients for the duration (put back as found, also after an error)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextmanager
def _logits_at(model: torch.nn.Module, rows: list[int]) -> Iterator[None]:
    """The LM head sees the hidden states of ``rows`` only (the logits are (B, R, vocab))."""

    def pick(module, args):
        return (args[0][:, rows], *args[1:])

    handle = model.get_output_embeddings().register_forward_pre_hook(pick)
    try:
        yield
    finally:
        handle.remove()


class GradFocus(MapMethod):
    """``focus_grad`` (grid_h/m, grid_w/m) in [0,1]: min-max of the mean over the chosen layers and
    coordinate digits of ``mean_h max(0, g * A)`` on the digit's row (issue #11's definition).

    Arrays: ``focus_grad_raw``, ``focus_grad_layers`` (L, h/m, w/m) mean over digits. Info:
    ``tokens``, ``rows``, ``decoder_layers``.
    """

    name = "focus_grad"
    default = False

    def needs(self, selection: Selection) -> Needs:
        return Needs()

    def extra_pass(self, runner: Runner, selection: Selection) -> list[Any]:
        # A generated answer: the same tokens forced after the prompt.
        inputs, starts = runner.forced_inputs()
        ids = inputs["input_ids"]
        wanted = []  # per item: (row position, digit token id)
        for b, answer in enumerate(runner.answers):
            start = starts[b]
            wanted.append([(start - 1 + i, int(ids[b, start + i])) for i in answer.rows])
        rows = sorted({p for item in wanted for p, _ in item})
        layers = list(selection.decoder_layers)
        model = runner.model
        with (
            torch.inference_mode(False),  # a caller's inference_mode would keep autograd off
            torch.enable_grad(),
            _frozen(model),
            _logits_at(model, rows),
            _differentiable_rows(model, runner.parts, layers, rows) as probs,
        ):
            logits = model(**inputs, use_cache=False).logits  # (B, R, vocab)
            log_p = torch.log_softmax(logits.float() if logits.dtype != torch.float64 else logits, dim=-1)
            out = []
            for b, item in enumerate(wanted):
                per_digit = []
                for position, token in item:
                    r = rows.index(position)
                    leaves = [probs[layer] for layer in layers]
                    grads = torch.autograd.grad(log_p[b, r, token], leaves, retain_graph=True)
                    per_layer = [
                        (g[b, :, r] * a.detach()[b, :, r]).clamp_min(0).mean(dim=0)
                        for g, a in zip(grads, leaves, strict=True)
                    ]  # each (K,)
                    per_digit.append(torch.stack(per_layer))  # (L, K)
                image = (ids[b] == runner.parts.image_token_id).nonzero().flatten()
                out.append(torch.stack(per_digit).mean(dim=0)[:, image].detach().cpu())  # (L, n_img)
        return out

    def reduce(self, item: Item, selection: Selection) -> list[Map]:
        per_layer = item.extra[self.name].double()  # (L, n_img), mean over digits
        layers = merged_grid(item, per_layer.numpy())
        raw = layers.mean(axis=0)
        arrays = {"focus_grad_raw": raw.astype(np.float32), "focus_grad_layers": layers.astype(np.float32)}
        return [self.decision_map(item, selection, minmax(raw), "Gradient-weighted focus", arrays)]
