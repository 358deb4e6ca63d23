"""Parse a grounding answer into a click, convert coordinate conventions, find the number tokens.

- `parse_answer` finds the final answer (after reasoning; `lav.coords.region`), its point or box
  and the characters of each number, or a refusal (`AnswerRules`); `explain_missing` says in one
  sentence why an answer has none.
- `resolve_convention` and `to_click` turn it into original-image pixels, flagging values outside
  the convention's range instead of clipping them.
- `tokens_for_spans` / `number_tokens` map those characters to answer token indices.
"""

from __future__ import annotations

from .convert import (
    ABSOLUTE_ORIGINAL,
    ABSOLUTE_RESIZED,
    CONVENTIONS,
    NORMALIZED_1,
    RELATIVE_100,
    RELATIVE_999,
    RELATIVE_1000,
    RELATIVE_1000_YX,
    Click,
    oriented,
    resolve_convention,
    to_click,
)
from .parse import Parsed, explain_missing, parse_answer
from .rules import DEFAULT_RULES, AnswerRules
from .tokens import number_tokens, tokens_for_spans

__all__ = [
    "ABSOLUTE_ORIGINAL",
    "ABSOLUTE_RESIZED",
    "AnswerRules",
    "CONVENTIONS",
    "Click",
    "DEFAULT_RULES",
    "NORMALIZED_1",
    "Parsed",
    "RELATIVE_100",
    "RELATIVE_1000",
    "RELATIVE_1000_YX",
    "RELATIVE_999",
    "explain_missing",
    "number_tokens",
    "oriented",
    "parse_answer",
    "resolve_convention",
    "to_click",
    "tokens_for_spans",
]
