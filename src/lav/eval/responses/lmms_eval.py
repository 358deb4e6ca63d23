"""lmms-eval's logged samples (``--log_samples``: ``<date>_samples_<task>.jsonl``).

Schema, from EvolvingLMMs-Lab/lmms-eval (commit 75571cfe): ``lmms_eval/evaluator.py`` l. 1277-1296
builds each line from ``doc_id`` (the document's index in the task's split), ``target``,
``resps`` (the generation before the task's filters), ``filtered_resps`` (after them),
``token_counts``, ``doc_hash`` and the task's metrics; ``loggers/evaluation_tracker.py``
l. 258-299 writes it, flattening a single request's ``[[text]]`` / ``[text]`` to ``text`` and
dropping ``resps`` when it equals ``filtered_resps`` (releases before v0.7, d8fcb9c3, kept the
lists: ``resps`` ``[[text]]``, ``filtered_resps`` ``[text]``; both shapes are read). The replayed
answer is ``resps`` (what the model generated) when present, else ``filtered_resps``.

lmms-eval numbers documents, it does not carry the benchmark's ids: ``doc_id`` n is matched to the
sample at place n of the data as lav reads it (0-based, before ``--limit``), so ``--data`` must be
the same split in the same order (an ``hf`` ``save_to_disk`` / parquet copy of the task's dataset).
"""

from __future__ import annotations

from typing import Any

from ...errors import InputError
from .base import LINES, Answer, ResponseFormat, text_or_reason


def _recognises(first: Any) -> bool:
    return isinstance(first, dict) and "doc_id" in first and ("filtered_resps" in first or "resps" in first)


def _one_text(value: Any, where: str, field: str) -> Any:
    """The single generated text inside lmms-eval's (possibly nested, one-element) lists."""
    while isinstance(value, list):
        if len(value) != 1:
            raise InputError(
                f"{where}: {field} holds {len(value)} responses (a multiple-choice or several-request "
                "task); lav replays one generated answer per document"
            )
        value = value[0]
    return value


def _read(rows: list[tuple[int, dict[str, Any]]]) -> list[Answer]:
    out = []
    for lineno, row in rows:
        where = f"line {lineno}"
        doc_id = row.get("doc_id")
        if isinstance(doc_id, bool) or not isinstance(doc_id, int) or doc_id < 0:
            raise InputError(f"{where}: doc_id is {doc_id!r}, not a document index (a whole number >= 0)")
        field = "resps" if "resps" in row else "filtered_resps"
        text, reason = text_or_reason(_one_text(row.get(field), where, field), where, field)
        out.append(Answer(str(doc_id), text, reason))
    return out


FORMAT = ResponseFormat(
    name="lmms-eval",
    layout=LINES,
    recognises=_recognises,
    read=_read,
    source="EvolvingLMMs-Lab/lmms-eval lmms_eval/evaluator.py l. 1277-1296, loggers/evaluation_tracker.py l. 258-299",
    keyed_by="position",
)
