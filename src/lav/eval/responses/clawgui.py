"""ClawGUI-Eval's predictions (``output/<experiment>/<benchmark>/predictions.jsonl``).

Schema, from ZJU-REAL/ClawGUI ``clawgui-eval/main.py`` (commit d990d3e3): each line is the input
sample (``id``, ``image``, ``question``, ...) copied, plus the answer under
``f"{model_type}_infer"`` (l. 220-227, 252-258) and, when inference failed, ``error`` with an
empty answer (l. 226-236); written with ``json.dumps`` one per line (l. 133-150). Its judge finds the
answer the same way, by the key ending in ``_infer`` (``judge/base_judge.py`` l. 89-101); the
predictions path is in ``clawgui-eval/README.md`` l. 335-338. The answer is the
inferencer's ``_post_process`` of the generated text (``inference/base_inferencer.py`` l. 137-144),
which for some models drops the chat-template tail; ``predictions_judge.jsonl`` adds ``correct``
and reads the same. ClawGUI's ids are those of its own converted data files (``data/*.json``):
they must be the ids of the data passed to ``--data``.
"""

from __future__ import annotations

from typing import Any

from ...errors import InputError
from .base import LINES, Answer, ResponseFormat, key_of, text_or_reason


def _answer_keys(row: dict[str, Any]) -> list[str]:
    return [k for k in row if isinstance(k, str) and k.endswith("_infer")]


def _recognises(first: Any) -> bool:
    return isinstance(first, dict) and "id" in first and len(_answer_keys(first)) == 1


def _read(rows: list[tuple[int, dict[str, Any]]]) -> list[Answer]:
    out = []
    for lineno, row in rows:
        where = f"line {lineno}"
        keys = _answer_keys(row)
        if len(keys) != 1:
            raise InputError(
                f"{where}: expected one '<model_type>_infer' answer field, found {keys or 'none'}; pass "
                "one model's predictions.jsonl"
            )
        text, reason = text_or_reason(row[keys[0]], where, keys[0], row.get("error"))
        out.append(Answer(key_of(row, "id", where), text, reason))
    return out


FORMAT = ResponseFormat(
    name="clawgui",
    layout=LINES,
    recognises=_recognises,
    read=_read,
    source="ZJU-REAL/ClawGUI clawgui-eval/main.py l. 133-150, 220-236",
)
