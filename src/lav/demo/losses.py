"""The demo's training losses: answer cross-entropy, attention supervision, position probe, edge.

- ``ce``: cross-entropy on the answer tokens (the digits, the punctuation, ``<|im_end|>``);
- ``attn``: in the decoder layers `SUPERVISED_LAYERS`, every head, the attention rows of the queries
  that produce the coordinate digits, against the target's image tokens (cross-entropy towards the
  share of the target's box in each token's cell);
- ``probe`` (optional): a linear head reads each image token's (row, column) from the residual
  stream entering the last layer;
- ``edge`` (only when the batch has ``widgets``): the share of the attention the vision patches
  *receive* (lav's edge map) that lands on widget patches, pushed up.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
from torch import nn

from ..capture import received_chunked
from ..errors import UnsupportedModelError
from ..models import inspect_model
from . import screens as S

#: Decoder layers (negative indices) whose digit queries' attention is supervised.
SUPERVISED_LAYERS = (-1,)
#: Batch keys that are training targets, not model inputs.
TARGET_KEYS = ("labels", "digit_rows", "target", "widgets")


def _vision_rope(module: nn.Module) -> Callable:
    """The vision rotary function of the modeling file that defines ``module``'s class."""
    rope = getattr(sys.modules[type(module).__module__], "apply_rotary_pos_emb_vision", None)
    if rope is None:
        raise UnsupportedModelError(
            f"{type(module).__module__} has no apply_rotary_pos_emb_vision; the edge loss knows only "
            "vision towers that apply it to q and k (Qwen2-VL .. Qwen3.5)"
        )
    return rope


class VisionScores:
    """Attention each patch receives in every vision block, with gradients, per image.

    `lav.capture` records the same statistic without gradients (it must not change the run); for a
    loss, a forward pre-hook on each block's attention module recomputes the post-rotary q and k
    from the module's own inputs with the modeling file's own rotary function, and sums the softmax
    over queries per ``cu_seqlens`` segment with `lav.capture.received_chunked` (exact, differentiable).
    Eager ``output_attentions`` records the vision modules' outputs, not their probabilities
    (transformers 5.24), so it cannot serve.
    """

    def __init__(self, model: nn.Module):
        #: per block, per image: (n_patches,) received attention, mean over heads, block-major order.
        self.received: list[list[torch.Tensor]] = []
        self._handles = [
            attn.register_forward_pre_hook(self._hook, with_kwargs=True)
            for attn in inspect_model(model).vision_attention
        ]

    def _hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]
        cu = kwargs["cu_seqlens"]
        cos, sin = kwargs["position_embeddings"]
        n = hidden.shape[0]
        q, k, _ = module.qkv(hidden).reshape(n, 3, module.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
        q, k = _vision_rope(module)(q, k, cos, sin)
        per_image = []
        for a, b in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True):
            # [head, n, d] per image -> (head, n) received -> mean over heads
            got = received_chunked(q[a:b].transpose(0, 1), k[a:b].transpose(0, 1), module.scaling)
            per_image.append(got.mean(0))
        self.received.append(per_image)

    def close(self) -> None:
        """Remove the hooks (call it in ``finally``)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> VisionScores:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def losses(
    model: nn.Module, batch: dict[str, torch.Tensor], image_token_id: int, probe: nn.Module | None = None
) -> dict[str, torch.Tensor]:
    """Answer cross-entropy per token (``ce``), attention loss (``attn``), probe loss (``probe``),
    edge loss (``edge``, with ``batch["widgets"]``) and teacher-forced accuracy of each digit slot
    (``acc``: (6,) x hundreds, tens, units, y ...). The model must run eager attention."""
    inputs = {k: v for k, v in batch.items() if k not in TARGET_KEYS}
    scores = VisionScores(model) if "widgets" in batch else None
    try:
        out = model(**inputs, output_attentions=True, output_hidden_states=probe is not None, use_cache=False)
    finally:
        if scores is not None:
            scores.close()
    logits = out.logits[:, :-1]
    labels = batch["labels"][:, 1:]
    ce = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100
    )
    ids = batch["input_ids"]
    rows = batch["digit_rows"]
    target = batch["target"]
    attn_loss = ce.new_zeros(())
    n = 0
    for layer in SUPERVISED_LAYERS:
        attn = out.attentions[layer]  # [batch, head, query_pos, key_pos]
        for b in range(ids.shape[0]):
            r = rows[b][rows[b] >= 0]
            img = (ids[b] == image_token_id).nonzero().flatten()
            p = attn[b][:, r][:, :, img]  # (H, R, n_img)
            attn_loss = attn_loss - (target[b] * torch.log(p + 1e-6)).sum(-1).mean()
            n += 1
    result = {"ce": ce, "attn": attn_loss / max(n, 1)}
    if scores is not None:
        widgets = batch["widgets"]
        shares = [r[widgets[i]].sum() / r.sum() for block in scores.received for i, r in enumerate(block)]
        result["edge"] = -torch.log(torch.stack(shares)).mean()
    with torch.no_grad():
        slots = rows[:, :6].clamp(min=0)
        pred = out.logits.gather(1, slots[..., None].expand(-1, -1, out.logits.shape[-1])).argmax(-1)
        want = ids.gather(1, slots + 1)
        result["acc"] = ((pred == want) & (rows[:, :6] >= 0)).float().mean(0)
    if probe is not None:
        h = out.hidden_states[-2][ids == image_token_id]  # (B * n_img, hidden), raster per image
        cells = torch.arange(h.shape[0]) % (S.ROWS * S.COLS)
        logits = probe(h)
        result["probe"] = torch.nn.functional.cross_entropy(logits[:, : S.ROWS], cells // S.COLS) + (
            torch.nn.functional.cross_entropy(logits[:, S.ROWS :], cells % S.COLS)
        )
    return result
