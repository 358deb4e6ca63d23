"""Plain JSON Lines answers: ``{"id": ..., "response": "..."}`` per line (other fields ignored).

What `examples/vllm_generate.py` writes, and the simplest file any engine can be made to write. A
``response`` of null counts as no answer for that sample.
"""

from __future__ import annotations

from typing import Any

from .base import LINES, Answer, ResponseFormat, key_of, text_or_reason


def _recognises(first: Any) -> bool:
    return isinstance(first, dict) and "id" in first and "response" in first


def _read(rows: list[tuple[int, dict[str, Any]]]) -> list[Answer]:
    out = []
    for lineno, row in rows:
        where = f"line {lineno}"
        text, reason = text_or_reason(row.get("response"), where, "response")
        out.append(Answer(key_of(row, "id", where), text, reason))
    return out


FORMAT = ResponseFormat(
    name="jsonl",
    layout=LINES,
    recognises=_recognises,
    read=_read,
    source="lav's own: one object per line with id and response",
)
