"""Parse a grounding answer into a click, convert coordinate conventions, find the number tokens.

- `parse_answer` finds the point or box in an answer and the characters of each number;
  `explain_missing` says in one sentence why an answer has none.
- `resolve_convention` and `to_click` turn it into original-image pixels, flagging values outside
  the convention's range instead of clipping them.
- `tokens_for_spans` / `number_tokens` map those characters to answer token indices.
"""

from __future__ import annotations

from .convert import (
    ABSOLUTE_RESIZED,
    CONVENTIONS,
    NORMALIZED_1,
    RELATIVE_1000,
    Click,
    resolve_convention,
    to_click,
)
from .parse import Parsed, explain_missing, parse_answer
from .tokens import number_tokens, tokens_for_spans

__all__ = [
    "ABSOLUTE_RESIZED",
    "CONVENTIONS",
    "Click",
    "NORMALIZED_1",
    "Parsed",
    "RELATIVE_1000",
    "explain_missing",
    "number_tokens",
    "parse_answer",
    "resolve_convention",
    "to_click",
    "tokens_for_spans",
]
