"""`loads`: the one JSON parser lav uses on anything it reads, with bounds on what a file may hold.

The standard `json.loads` recurses once per level of nesting, so ``[[[[...]]]]`` a few thousand deep
raises `RecursionError` (not a `ValueError`), which no reader expects; a number literal like ``1e400``
becomes ``inf`` and `int(inf)` raises `OverflowError` later, far from the file. Here both are a
`JSONLimitError`, a `ValueError`, so every reader's existing ``except ValueError`` names the file as
damaged. No JSON lav reads (results, evaluations, configs, tokenizers, trainer states) nests beyond
a dozen levels; the limit leaves room for foreign configs while staying far below the interpreter's.
"""

from __future__ import annotations

import json
import math
from typing import Any

#: Deepest nesting of lists and objects accepted (lav's own files nest about 6 deep).
MAX_DEPTH = 100


class JSONLimitError(ValueError):
    """JSON nested deeper than `MAX_DEPTH`, or a number too large for a float."""


def loads(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads(text)`` that raises `JSONLimitError` (a `ValueError`) beyond the bounds."""
    try:
        value = json.loads(text, parse_float=_finite_float)
    except RecursionError:
        raise JSONLimitError(f"nested deeper than {max_depth} levels") from None
    if not _depth_within(value, max_depth):
        raise JSONLimitError(f"nested deeper than {max_depth} levels")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400: a literal that overflows, not the Infinity constant
        raise JSONLimitError(f"the number {text[:40]} is too large")
    return value


def _depth_within(value: Any, limit: int) -> bool:
    """Whether ``value`` nests at most ``limit`` levels (iterative: no recursion on hostile input)."""
    if not isinstance(value, (dict, list)):
        return True
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return False
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return True
