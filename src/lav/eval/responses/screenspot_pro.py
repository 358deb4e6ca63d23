"""ScreenSpot-Pro's official results JSON (``eval_screenspot_pro.py --log_path``).

Schema, from likaixin2000/ScreenSpot-Pro-GUI-Grounding ``eval_screenspot_pro.py`` (commit
bd8bbbb4): the file is ``json.dump(result_report)`` (l. 439) of ``{"details": [...], "metrics":
{...}}`` (l. 316-329); each ``details`` entry is the ``sample_result`` of l. 403-417: ``id`` (the
annotation's id), ``img_path``, ``group``, ``platform``, ``application``, ``lang``,
``instruction_style``, ``prompt_to_evaluate``, ``gt_type``, ``ui_type``, ``task_filename``,
``pred`` (the point in pixels, or null) and ``raw_response`` (the model wrapper's text, e.g.
``models/qwen2vl.py`` l. 124-129: decoded with special tokens kept), then ``bbox`` (positives) and
``correctness`` (l. 431). ``raw_response`` is what is replayed; ``pred`` is the script's own reading
of it. A run over several instruction styles or languages repeats an id: lav refuses the file then
(one answer per sample).
"""

from __future__ import annotations

from typing import Any

from ...errors import InputError
from .base import DOCUMENT, Answer, ResponseFormat, key_of, text_or_reason


def _recognises(doc: Any) -> bool:
    details = doc.get("details") if isinstance(doc, dict) else None
    return (
        isinstance(details, list)
        and "metrics" in doc
        and all(isinstance(d, dict) and "raw_response" in d and "id" in d for d in details[:1])
    )


def _read(doc: dict[str, Any]) -> list[Answer]:
    out = []
    for n, entry in enumerate(doc["details"]):
        where = f"details[{n}]"
        if not isinstance(entry, dict):
            raise InputError(f"{where} is not an object; pass the file eval_screenspot_pro.py wrote")
        raw = entry.get("raw_response")
        if raw is not None and not isinstance(raw, str):
            # Multi-step methods (models/methods/*.py) log a list of steps, not one generated text.
            raise InputError(
                f"{where}: raw_response is a {type(raw).__name__}, not one generated text (a multi-step "
                "method's log?); lav replays one answer per sample"
            )
        text, reason = text_or_reason(raw, where, "raw_response")
        out.append(Answer(key_of(entry, "id", where), text, reason))
    return out


FORMAT = ResponseFormat(
    name="screenspot-pro",
    layout=DOCUMENT,
    recognises=_recognises,
    read=_read,
    source="likaixin2000/ScreenSpot-Pro-GUI-Grounding eval_screenspot_pro.py l. 316-329, 403-431",
)
