"""`lav eval`'s own ``samples.jsonl``: one record per sample (`lav.eval.records`), replayed by its
``id`` and ``response``. A record of a sample that could not run (``error`` set, ``response`` null)
is no answer for that sample. With ``--compare-base`` the record's ``base`` outcome holds the base
model's answer; the adapter's (top-level ``response``) is the one replayed.
"""

from __future__ import annotations

from typing import Any

from .base import LINES, Answer, ResponseFormat, key_of, text_or_reason

#: Keys every record `lav.eval.records.record` / `error_record` writes beside id and response.
_RECORD_KEYS = ("instruction", "target", "correct", "click", "error")


def _recognises(first: Any) -> bool:
    return isinstance(first, dict) and all(k in first for k in ("id", "response", *_RECORD_KEYS))


def _read(rows: list[tuple[int, dict[str, Any]]]) -> list[Answer]:
    out = []
    for lineno, row in rows:
        where = f"line {lineno}"
        text, reason = text_or_reason(row.get("response"), where, "response", row.get("error"))
        out.append(Answer(key_of(row, "id", where), text, reason))
    return out


FORMAT = ResponseFormat(
    name="lav",
    layout=LINES,
    recognises=_recognises,
    read=_read,
    source="lav eval's samples.jsonl (lav.eval.records)",
)
