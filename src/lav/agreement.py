"""Where transformers and another engine disagree on a forced answer, from the forward that forces it.

A forced analysis (``response=``, `lav eval --responses`) runs one teacher-forced forward over the
prompt and the given answer; its logits at the position before each answer token are what
transformers would have predicted there. `lav.confidence.forced_scores` keeps, per answer token,
the log-probability of the given token and the most likely tokens (the first is transformers'
greedy choice); `agreement` turns them into one item's figures: the answer's log-probability (all
tokens, and the coordinate tokens), whether greedy decoding would have written every answer token (and every coordinate token), and
the first token where it would not. No extra pass: the logits are the forward's own output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .confidence import TokenScores


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
    logprobs = [float(v) for v in scores.chosen]
    greedy = [int(row[0]) for row in scores.top_ids]
    differ = [i for i, (g, t) in enumerate(zip(greedy, ids, strict=True)) if g != t]
    coords = sorted(set(coordinates))
    first = None
    if differ:
        i = differ[0]
        first = {
            "index": i,
            "token": tokens[i] if i < len(tokens) else tok.decode([ids[i]]),
            "greedy": tok.decode([greedy[i]], skip_special_tokens=False),
            "logprob": logprobs[i],
        }
    return {
        "tokens": len(ids),
        "logprob": float(sum(logprobs)),
        "coord_logprob": float(sum(logprobs[i] for i in coords)) if coords else None,
        "agrees": not differ,
        "coords_agree": (not set(differ) & set(coords)) if coords else None,
        "first_disagreement": first,
    }
