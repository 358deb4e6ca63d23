"""Float64 references for the methods beyond raw attention (issue #11), written without lav's code.

Attention rows come from eager ``output_attentions`` of a float64 copy of the model (LoRA merged in
for the adapter pass); everything after that is written out again from the definitions in the README
("Methods beyond raw attention").
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from .reference64 import (
    _softmax_in_input_dtype,
    digit_rows,
    float64_inputs,
    forced_prompt,
    load_float64_eager,
    minmax,
)


def reference_model(model, folder):
    """A float64 eager copy of ``model`` (a PeftModel is merged first), saved to and loaded from ``folder``."""
    plain = copy.deepcopy(model)
    if hasattr(plain, "merge_and_unload"):
        plain = plain.merge_and_unload()
    plain.save_pretrained(folder)
    return load_float64_eager(folder)


class Rows:
    """Eager float64 attention of one forced prompt: ``attn[l]`` (H, L, L) per full-attention layer."""

    def __init__(self, reference, processor, image, instruction, response):
        prompt = forced_prompt(processor, image, instruction, response)
        inputs = float64_inputs(prompt.inputs)
        # What each full-attention layer's attention reads (after the layer's input norm), all dims.
        self.hidden: list[torch.Tensor] = []

        def keep(module, args, kwargs):
            self.hidden.append(kwargs.get("hidden_states", args[0] if args else None)[0].double())

        layers = [m for m in reference.modules() if hasattr(m, "self_attn")]
        handles = [layer.self_attn.register_forward_pre_hook(keep, with_kwargs=True) for layer in layers]
        try:
            with torch.no_grad(), _softmax_in_input_dtype():
                out = reference(**inputs, output_attentions=True)
        finally:
            for h in handles:
                h.remove()
        self.attn = [a[0].double() for a in out.attentions if a is not None]
        assert len(self.hidden) == len(self.attn), "one attention input per full-attention layer"
        ids = inputs["input_ids"][0]
        self.length = ids.shape[0]
        self.image = (ids == reference.config.image_token_id).nonzero().flatten()
        self.start = prompt.answer_start
        self.digits = digit_rows(processor.tokenizer, inputs["input_ids"], prompt.answer_start)
        _, h, w = prompt.inputs["image_grid_thw"][0].tolist()
        merge = reference.config.vision_config.spatial_merge_size
        self.shape = (h // merge, w // merge)

    def to_image(self, layer: int, queries: list[int]) -> torch.Tensor:
        """(H, n_queries, n_img) attention of absolute query positions to the image tokens."""
        return self.attn[layer][:, queries][:, :, self.image]

    def focus_tokens(self, layers) -> np.ndarray:
        """(n_img,) raw focus: mean over layers, heads and the queries before the digits."""
        queries = [self.start - 1 + i for i in self.digits]
        return np.mean([self.to_image(layer, queries).mean(dim=(0, 1)).numpy() for layer in layers], axis=0)


def sink_masked_reference(rows: Rows, layers, tau: float) -> dict:
    """``focus_sink_masked`` and its masked cells by the README's rule (Kang et al.'s hidden-state
    criterion), over every dimension of the attention input."""
    sinks: set[int] = set()
    for layer in layers:
        x = rows.hidden[layer].abs()  # (L, hidden)
        dims = (x[0] >= tau).nonzero().flatten()
        if len(dims):
            phi = x[rows.image][:, dims].amax(dim=-1)
            sinks |= set((phi >= tau).nonzero().flatten().tolist())
    raw = rows.focus_tokens(layers)
    n = raw.shape[0]
    others = [raw[j] for j in range(n) if j not in sinks]
    masked = np.array([min(others) if j in sinks else raw[j] for j in range(n)])
    width = rows.shape[1]
    return {
        "values": minmax(masked.reshape(rows.shape)),
        "cells": [[j // width, j % width] for j in sorted(sinks)],
    }


def selected_heads_reference(rows: Rows, heads) -> np.ndarray:
    queries = [rows.start - 1 + i for i in rows.digits]
    per_head = [rows.to_image(layer, queries)[head].mean(dim=0).numpy() for layer, head in heads]
    return minmax(np.mean(per_head, axis=0).reshape(rows.shape))


def relative_reference(task: Rows, generic: Rows, layers) -> np.ndarray:
    ratio = task.focus_tokens(layers) / np.maximum(generic.focus_tokens(layers), 1e-12)
    return minmax(ratio.reshape(task.shape))


def grad_reference(reference, processor, image, instruction, response, layers) -> np.ndarray:
    """``focus_grad`` by autograd through the whole eager float64 model (every parameter live)."""
    prompt = forced_prompt(processor, image, instruction, response)
    inputs = float64_inputs(prompt.inputs)
    with torch.enable_grad(), _softmax_in_input_dtype():
        out = reference(**inputs, output_attentions=True)
        attn = [a for a in out.attentions if a is not None]
        chosen = [attn[layer] for layer in layers]
        log_p = torch.log_softmax(out.logits[0].double(), dim=-1)
        ids = inputs["input_ids"][0]
        image_tokens = (ids == reference.config.image_token_id).nonzero().flatten()
        start = prompt.answer_start
        digits = digit_rows(processor.tokenizer, inputs["input_ids"], start)
        maps = []
        for i in digits:
            r = start - 1 + i
            grads = torch.autograd.grad(log_p[r, ids[start + i]], chosen, retain_graph=True)
            for g, a in zip(grads, chosen, strict=True):
                maps.append((g[0, :, r, image_tokens] * a[0, :, r, image_tokens]).clamp_min(0).mean(dim=0))
    _, h, w = prompt.inputs["image_grid_thw"][0].tolist()
    merge = reference.config.vision_config.spatial_merge_size
    return minmax(torch.stack(maps).mean(dim=0).detach().numpy().reshape(h // merge, w // merge))


def rollout_reference(reference, processor, image, instruction, response, last_block: int) -> np.ndarray:
    """``edge_rollout``: column sums of the dense float64 product of ``(I + mean_h A_b) / 2``, b = 0..last."""
    from .reference64 import block_major_to_raster, received, vision_qk, window_order  # noqa: F401

    prompt = forced_prompt(processor, image, instruction, response)
    inputs = float64_inputs(prompt.inputs)
    vc = reference.config.vision_config
    merge = vc.spatial_merge_size
    with torch.no_grad(), vision_qk(reference) as calls:
        reference(**inputs)
    rollout = None
    for block in range(last_block + 1):
        dense = torch.block_diag(
            *[
                torch.softmax(q[0].double() @ k[0].double().transpose(-1, -2) * s, -1).mean(0)
                for q, k, s in calls[block]
            ]
        )
        step = 0.5 * torch.eye(dense.shape[0], dtype=torch.float64) + 0.5 * dense
        rollout = step if rollout is None else step @ rollout
    seq = rollout.sum(dim=0)
    if getattr(vc, "fullatt_block_indexes", None) is not None:  # Qwen2.5-VL: window order throughout
        seq = seq[torch.argsort(window_order(reference, inputs["image_grid_thw"], merge))]
    _, h, w = inputs["image_grid_thw"][0].tolist()
    return minmax(block_major_to_raster(seq.numpy(), h, w, merge))
