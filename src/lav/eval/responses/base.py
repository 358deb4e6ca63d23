"""What every responses format is: one `ResponseFormat` record (name, where its schema is
published, how to recognise a file, how to read its answers), and what a reader gives (`Answer`).

`lav.eval.responses` knows formats only through these records (`REGISTRY`): it parses the file once
(JSON Lines, or one JSON document), asks each record in turn whether it recognises the content, and
hands the first that does the parsed content.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import InputError

#: How a file is laid out: one JSON object per line, or one JSON document.
LINES, DOCUMENT = "lines", "document"


@dataclass(frozen=True)
class Answer:
    """One answer of the file: the key it is matched by (a sample id, or with a format keyed by
    position the sample's 0-based place in the data), its text, or None with ``reason`` (the engine
    recorded an error, or gave no text): that sample is then counted as an error."""

    key: str
    text: str | None
    reason: str | None = None


@dataclass(frozen=True)
class ResponseFormat:
    """One responses format.

    ``layout``: `LINES` or `DOCUMENT`; ``recognises``: given the first line's object (`LINES`) or
    the document, whether this is the format; ``read``: the parsed lines (each with its line number)
    or the document -> the answers in file order. ``keyed_by``: ``"id"`` (matched to the sample's
    id) or ``"position"`` (to the sample at that 0-based place in the data as lav reads it).
    ``source``: where its schema is published.
    """

    name: str
    layout: str
    recognises: Callable[[Any], bool]
    read: Callable[[Any], list[Answer]]
    source: str
    keyed_by: str = "id"


def text_or_reason(value: Any, where: str, field: str, error: Any = None) -> tuple[str | None, str | None]:
    """(text, reason) of an answer field: text when it is non-empty text; None with why otherwise."""
    if error:
        return None, f"the engine recorded an error: {' '.join(str(error).split())}"
    if value is None:
        return None, f"no answer ({field} is null)"
    if not isinstance(value, str):
        raise InputError(f"{where}: {field} is a {type(value).__name__}, not text; pass the file as written")
    if not value.strip():
        return None, "the engine's answer is empty"
    return value, None


def key_of(row: dict[str, Any], field: str, where: str) -> str:
    """The id ``field`` of ``row`` as text (a string or an integer)."""
    value = row.get(field)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(f"{where}: {field!r} is {value!r}, not a string or integer id")
    return str(value)
