"""Inputs with given answer tokens appended: the same tokens forced, never re-tokenised from text."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def with_answers(
    inputs: dict[str, torch.Tensor], answers: Sequence[Sequence[int]], pad_id: int
) -> tuple[dict[str, torch.Tensor], list[int]]:
    """Left-padded prompt ``inputs`` (every prompt ends at the same position) followed by each item's
    ``answers`` token ids, right-padded; and each answer's first position.

    Right padding after the last answer token changes nothing before it (causal attention). Token-wise
    tensors other than ``input_ids`` / ``attention_mask`` (``mm_token_type_ids``: text) get zeros.
    """
    ids = inputs["input_ids"]
    batch, length = ids.shape
    extra = max(len(a) for a in answers)
    out = {}
    for key, value in inputs.items():
        if value.dim() != 2 or value.shape != (batch, length):
            out[key] = value
            continue
        tail = torch.zeros((batch, extra), dtype=value.dtype, device=value.device)
        for b, answer in enumerate(answers):
            if key == "input_ids":
                tail[b] = pad_id
                tail[b, : len(answer)] = torch.tensor(list(answer), dtype=value.dtype)
            elif key == "attention_mask":
                tail[b, : len(answer)] = 1
        out[key] = torch.cat([value, tail], dim=1)
    return out, [length] * batch
