"""Which answer tokens spell each coordinate number, from the tokenizer's character offsets.

Offsets, not string guessing: Qwen tokenizers split every digit into its own token and give the
space before a number a token of its own, so "(107, 243)" is ten tokens and only the six digits
produce the number. The decision focus reads the queries that produce exactly those tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

from .parse import Parsed


def tokens_for_spans(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[int]:
    """Sorted indices of the tokens whose [start, end) character offsets overlap any span.

    ``offsets``: one (start, end) per answer token, as ``return_offsets_mapping`` gives them.
    Zero-width tokens ((0, 0) for special tokens, or a token that decodes to nothing) cover no
    character and are never selected, even when they sit inside a number.
    """
    if not spans:
        return []
    # A token outside [first start, last end) overlaps no span: one comparison for most tokens of a
    # long answer (reasoning models write hundreds), which a loop over the spans made per token.
    lo, hi = min(s for s, _ in spans), max(e for _, e in spans)
    chosen = []
    for i, (start, end) in enumerate(offsets):
        if end <= start or start >= hi or end <= lo:
            continue
        for s_start, s_end in spans:
            if start < s_end and end > s_start:
                chosen.append(i)
                break
    return chosen


def number_tokens(offsets: Sequence[tuple[int, int]], parsed: Parsed) -> dict[str, list[int]]:
    """Indices of the tokens spelling x (a box: x1 and x2) and y (y1 and y2): ``{"x": [...], "y": [...]}``."""
    return {"x": tokens_for_spans(offsets, parsed.x_spans), "y": tokens_for_spans(offsets, parsed.y_spans)}
