"""`lav eval --responses`: answers generated elsewhere, replayed in one teacher-forced forward each
batch, and where transformers would have answered otherwise.

`strip_end` cleans an engine's answer for forcing; `agreement_summary` gives the summary's ``agreement`` from the records;
`disagreements` the samples where transformers' greedy choice differs from the engine's answer,
those whose coordinates differ first (the report lists them first). Torch-free.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: Shown in the report's section, the worst first.
DISAGREEMENTS_MAX = 50


def strip_end(text: str, ends: Iterable[str]) -> str:
    """``text`` without trailing end-of-turn markers (``<|im_end|>``...): harnesses that decode with
    special tokens kept (ScreenSpot-Pro's ``models/qwen2vl.py``) write them; the forced answer is
    what comes before them, as lav's own answers are."""
    marks = [e for e in ends if e]
    changed = True
    while changed:
        changed = False
        for mark in marks:
            if text.endswith(mark):
                text, changed = text[: -len(mark)], True
    return text


def _mean(values: Sequence[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def agreement_summary(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The summary's ``agreement`` over the replayed samples that ran.

    ``n``: samples with an agreement record; ``coords``: share where greedy decoding writes every
    coordinate token the engine wrote (over the ``n_coords`` answers that have coordinates);
    ``answer``: share where it writes every answer token; ``mean_logprob`` (natural log, summed over
    the answer) and ``mean_coord_logprob``; ``disagree``: how many answers greedy would not write.
    """
    rows = [r["agreement"] for r in records if r.get("agreement")]
    coords = [a for a in rows if a["coords_agree"] is not None]
    return {
        "n": len(rows),
        "coords": _share([a["coords_agree"] for a in coords]),
        "n_coords": len(coords),
        "answer": _share([a["agrees"] for a in rows]),
        "mean_logprob": _mean([a["logprob"] for a in rows]),
        "mean_coord_logprob": _mean([a["coord_logprob"] for a in coords]),
        "disagree": sum(not a["agrees"] for a in rows),
    }


def disagreements(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Records whose answer greedy decoding would not write: coordinate disagreements first, then the
    least likely answers first."""
    out = [r for r in records if r.get("agreement") and not r["agreement"]["agrees"]]
    return sorted(out, key=lambda r: (r["agreement"]["coords_agree"] is not False, r["agreement"]["logprob"]))
