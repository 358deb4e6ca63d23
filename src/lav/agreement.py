"""Where transformers and another engine disagree on a forced answer, from the forward that forces it.

A forced analysis (``response=``, `lav eval --responses`) runs one teacher-forced forward over the
prompt and the given answer; its logits at the position before each answer token are what
transformers would have predicted there. `token_scores` keeps, per answer token, the
log-probability of the given token and transformers' greedy (argmax) token; `agreement` turns them
into one item's figures: the answer's log-probability (all tokens, and the coordinate tokens),
whether greedy decoding would have written every answer token (and every coordinate token), and
the first token where it would not. No extra pass: the logits are the forward's own output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class TokenScores:
    """Per answer token ``i``: ``logprobs[i]`` = log p(token i | prompt, tokens < i) under the
    model (natural log), ``greedy[i]`` = the model's argmax token id at that position."""

    logprobs: tuple[float, ...]
    greedy: tuple[int, ...]


def token_scores(
    logits: torch.Tensor, starts: Sequence[int], answers: Sequence[Sequence[int]]
) -> list[TokenScores]:
    """Each item's `TokenScores` from one forward's ``logits`` (batch, positions, vocab).

    Item ``b``'s answer token ``i`` sits at position ``starts[b] + i`` and is predicted by the
    logits at ``starts[b] + i - 1``. The log-softmax runs over those rows only, in float32 at least.
    """
    out = []
    for b, (start, ids) in enumerate(zip(starts, answers, strict=True)):
        if not ids:
            out.append(TokenScores((), ()))
            continue
        rows = logits[b, start - 1 : start - 1 + len(ids)]
        rows = rows.to(torch.promote_types(rows.dtype, torch.float32))  # half precision up, float64 kept
        target = torch.tensor(list(ids), device=rows.device).unsqueeze(1)
        logp = torch.log_softmax(rows, dim=-1).gather(1, target).squeeze(1)
        out.append(TokenScores(tuple(logp.tolist()), tuple(rows.argmax(dim=-1).tolist())))
    return out


def agreement(
    scores: TokenScores, ids: Sequence[int], tokens: Sequence[str], coordinates: Sequence[int], tok
) -> dict[str, Any]:
    """One item's agreement figures (a plain dict, saved in ``Result.agreement``).

    ``ids``: the given answer's token ids; ``tokens``: their text; ``coordinates``: indices of the
    tokens that spell the click's numbers (none for an answer without coordinates). Keys:
    ``tokens`` (count), ``logprob`` (sum over the answer), ``coord_logprob`` (sum over the
    coordinate tokens, null without), ``agrees`` (greedy writes every answer token),
    ``coords_agree`` (greedy writes every coordinate token; null without), ``first_disagreement``
    (null, or ``index``, ``token`` the given text, ``greedy`` the text transformers would write,
    ``logprob`` of the given token).
    """
    differ = [i for i, (g, t) in enumerate(zip(scores.greedy, ids, strict=True)) if g != t]
    coords = sorted(set(coordinates))
    first = None
    if differ:
        i = differ[0]
        first = {
            "index": i,
            "token": tokens[i] if i < len(tokens) else tok.decode([ids[i]]),
            "greedy": tok.decode([scores.greedy[i]], skip_special_tokens=False),
            "logprob": scores.logprobs[i],
        }
    return {
        "tokens": len(ids),
        "logprob": float(sum(scores.logprobs)),
        "coord_logprob": float(sum(scores.logprobs[i] for i in coords)) if coords else None,
        "agrees": not differ,
        "coords_agree": (not set(differ) & set(coords)) if coords else None,
        "first_disagreement": first,
    }
