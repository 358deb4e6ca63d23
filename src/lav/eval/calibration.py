"""Is the model's digit confidence worth anything? Accuracy by confidence decile and the expected
calibration error, from the records alone (torch-free).

A click's confidence is the product of the probabilities of the tokens that spell its numbers
(`lav.confidence`, the record's ``confidence``). Answers without a click (refusals, wrong format,
errors) have none and are left out; ``n`` says how many were counted. Bins are the ten equal-width
deciles of confidence, [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0] (the last one closed), as in
reliability diagrams (Guo et al., 2017, "On calibration of modern neural networks"); the expected
calibration error is ``sum_b (n_b / n) * |accuracy_b - mean confidence_b|`` over the bins that hold
answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Equal-width confidence bins.
BINS = 10


def calibration(outcomes: Sequence[Mapping[str, Any]], bins: int = BINS) -> dict[str, Any]:
    """``{"n", "ece", "mean_confidence", "accuracy", "bins": [{"low", "high", "n", "confidence",
    "accuracy"}]}`` over the outcomes that carry a ``confidence`` (``ece`` None when none does)."""
    pairs = [
        (float(o["confidence"]), bool(o["correct"])) for o in outcomes if o.get("confidence") is not None
    ]
    cells: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for conf, right in pairs:
        cells[min(int(conf * bins), bins - 1)].append((conf, right))
    rows = []
    ece = 0.0
    for i, cell in enumerate(cells):
        k = len(cell)
        conf = sum(c for c, _ in cell) / k if k else None
        acc = sum(r for _, r in cell) / k if k else None
        if k:
            ece += k / len(pairs) * abs(acc - conf)  # type: ignore[operator]
        rows.append({"low": i / bins, "high": (i + 1) / bins, "n": k, "confidence": conf, "accuracy": acc})
    n = len(pairs)
    return {
        "n": n,
        "ece": ece if n else None,
        "mean_confidence": sum(c for c, _ in pairs) / n if n else None,
        "accuracy": sum(r for _, r in pairs) / n if n else None,
        "bins": rows,
    }
