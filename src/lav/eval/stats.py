"""The summary of an evaluation, computed from its per-sample records alone (torch-free).

Everything a summary says is a function of the lines of ``samples.jsonl`` taken in dataset order,
so a resumed run, a merged multi-rank run and an uninterrupted run give the same ``summary.json``.

- `wilson` and `mcnemar_exact`: the interval of an accuracy and the exact paired test (binomial on
  the discordant pairs) of a base-vs-adapter comparison;
- `flips`: the 2x2 table of a paired comparison;
- `summarize`: the whole summary (accuracy, groups, per-layer maps, heads, coordinate check, the
  outcome table of `lav.eval.taxonomy` and the calibration of `lav.eval.calibration`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..metrics import wilson_interval
from .calibration import calibration
from .official import official, rate
from .taxonomy import outcome_flips, outcome_table

Record = Mapping[str, Any]

#: How many localization heads the summary lists, best first.
TOP_HEADS = 10
#: A coordinate convention that beats the one used by this much accuracy is reported as suspicious.
CONVENTION_MARGIN = 0.05


def wilson(k: int, n: int) -> list[float] | None:
    """95% Wilson score interval ``[low, high]`` of ``k`` hits in ``n``; None when ``n`` is 0."""
    if n == 0:
        return None
    low, high = wilson_interval(k, n)
    return [low, high]


def mcnemar_exact(fixed: int, broken: int) -> float:
    """Exact two-sided McNemar p-value: under no effect each discordant pair is a fair coin.

    ``p = min(1, 2 * P(X <= min(b, c)))`` with ``X ~ Binomial(b + c, 1/2)``; 1.0 with no discordant
    pair (nothing to test).
    """
    if fixed < 0 or broken < 0:
        raise ValueError(f"counts must be non-negative, got {fixed}, {broken}")
    n = fixed + broken
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(fixed, broken) + 1))
    # Exact integers up to the last step: no float sum of tiny terms.
    return min(1.0, 2 * tail / 2**n)


def flips(pairs: Iterable[tuple[bool, bool]]) -> dict[str, int]:
    """The 2x2 table of ``(base_correct, adapter_correct)`` pairs: fixed, broken, both right/wrong."""
    table = {"fixed": 0, "broken": 0, "both_right": 0, "both_wrong": 0}
    for base, adapter in pairs:
        if adapter and not base:
            table["fixed"] += 1
        elif base and not adapter:
            table["broken"] += 1
        elif base:
            table["both_right"] += 1
        else:
            table["both_wrong"] += 1
    return table


def _rate(k: int, n: int) -> dict[str, Any]:
    return {"n": n, "correct": k, "accuracy": k / n if n else None, "ci95": wilson(k, n)}


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return sum(kept) / len(kept) if kept else None


def _per_layer(outcomes: Sequence[Record], records: Sequence[Record], kind: str) -> list[dict[str, Any]]:
    """Mean pointing game, mass in box and image share per recorded layer of map ``kind``."""
    rows: list[dict[str, Any]] = []
    layers = next((r["layers"][kind] for r in records if r.get("layers", {}).get(kind)), None)
    if layers is None:
        return rows
    for i, layer in enumerate(layers):
        point, mass, share = [], [], []
        for out in outcomes:
            m = (out.get("maps") or {}).get(kind)
            if not m:
                continue
            if m.get("pointing") is not None:
                point.append(bool(m["pointing"][i]))
                mass.append(m["mass"][i])
            if m.get("image_share") is not None:
                share.append(m["image_share"][i])
        row: dict[str, Any] = {
            "layer": layer,
            "n": len(point),
            "pointing": sum(point) / len(point) if point else None,
            "mass": _mean(mass),
        }
        if kind == "focus":
            row["image_share"] = _mean(share)
        rows.append(row)
    return rows


def _methods(outcomes: Sequence[Record]) -> dict[str, dict[str, Any]]:
    """Pointing game and mass in box of each extra map method (``--maps``), by name."""
    names = sorted({n for o in outcomes for n in (o.get("maps") or {}) if n not in ("focus", "edge")})
    out = {}
    for name in names:
        point, mass = [], []
        for o in outcomes:
            m = (o.get("maps") or {}).get(name)
            if m and m.get("pointing") is not None:
                point.append(bool(m["pointing"][0]))
                mass.append(m["mass"][0])
        out[name] = {
            "n": len(point),
            "pointing": sum(point) / len(point) if point else None,
            "mass": _mean(mass),
        }
    return out


def _heads(outcomes: Sequence[Record], records: Sequence[Record]) -> list[dict[str, Any]]:
    """The heads whose maximum most often falls on the target, best first (ties: lower layer, head)."""
    hits: Counter[tuple[int, int]] = Counter()
    n = 0
    layers = next((r["layers"]["focus"] for r in records if r.get("layers", {}).get("focus")), None)
    for out in outcomes:
        grid = out.get("heads")
        if grid is None:
            continue
        n += 1
        for i, row in enumerate(grid):
            for h, hit in enumerate(row):
                hits[(i, h)] += int(hit)
    if n == 0 or layers is None:
        return []
    ranked = sorted(hits.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_HEADS]
    return [{"layer": layers[i], "head": h, "pointing": k / n, "n": n} for (i, h), k in ranked]


def _conventions(outcomes: Sequence[Record]) -> dict[str, Any]:
    """Accuracy had every answer been read in each convention, beside the one actually used."""
    used = Counter(o["convention"] for o in outcomes if o.get("convention"))
    names = sorted({c for o in outcomes for c in (o.get("conventions") or {})})
    n = len(outcomes)
    accuracy = {
        c: (sum(bool((o.get("conventions") or {}).get(c)) for o in outcomes) / n if n else None)
        for c in names
    }
    actual = sum(bool(o["correct"]) for o in outcomes) / n if n else None
    note = None
    if actual is not None and accuracy:
        best = max(sorted(accuracy), key=lambda c: accuracy[c] or 0.0)
        if best not in used and (accuracy[best] or 0.0) - actual >= CONVENTION_MARGIN:
            note = (
                f"answers read as {best} would score {accuracy[best]:.1%} against {actual:.1%} as read: "
                f"the model may answer in {best}; rerun with --coords {best} if so"
            )
    return {"used": dict(sorted(used.items())), "accuracy": accuracy, "note": note}


def _run_summary(
    outcomes: Sequence[Record], records: Sequence[Record], fields: Sequence[str]
) -> dict[str, Any]:
    k = sum(bool(o["correct"]) for o in outcomes)
    out: dict[str, Any] = _rate(k, len(outcomes))
    out["wrong_format"] = sum(bool(o.get("wrong_format")) for o in outcomes)
    by: dict[str, dict[str, Any]] = {}
    for field in fields:
        groups: dict[str, list[bool]] = {}
        for r, o in zip(records, outcomes, strict=True):
            value = (r.get("groups") or {}).get(field)
            if value is not None:
                groups.setdefault(str(value), []).append(bool(o["correct"]))
        by[field] = {v: _rate(sum(c), len(c)) for v, c in sorted(groups.items())}
    out["by"] = by
    out["layers"] = {
        "focus": _per_layer(outcomes, records, "focus"),
        "edge": _per_layer(outcomes, records, "edge"),
    }
    out["methods"] = _methods(outcomes)
    out["heads"] = _heads(outcomes, records)
    out["conventions"] = _conventions(outcomes)
    out["outcomes"] = outcome_table(outcomes)
    out["calibration"] = calibration(outcomes)
    return out


#: How a record that could not run counts for the base model of a paired run: wrong.
_ERROR_OUTCOME: dict[str, Any] = {
    "correct": False,
    "wrong_format": False,
    "refused": False,
    "outcome": "error",
}

#: ``--refusals``: OSWorld-G's refusal samples scored (``official``) or left out (``excluded``, as
#: ClawGUI's harness does).
REFUSAL_CONVENTIONS = ("official", "excluded")


def summarize(
    records: Sequence[Record],
    group_fields: Sequence[str] | None = None,
    *,
    format: str = "",
    refusals: str = "official",
) -> dict[str, Any]:
    """The summary of an evaluation from its records (the lines of ``samples.jsonl``).

    Records with an ``error`` (a missing or unreadable image) are scored wrong and stay in ``n``
    (no official script drops a sample); ``n_errors`` and ``errors`` list them. ``group_fields``:
    the grouping fields of the dataset (default: every key found in the records' ``groups``).
    ``format``: the benchmark format, for the ``official`` block (`lav.eval.official`).
    ``refusals``: ``"excluded"`` leaves refusal samples (OSWorld-G) out of every number;
    ``refusal_conventions`` gives the accuracy both ways whenever there are some.
    With base results: ``base`` (the same summary for the base model), ``flips`` and ``mcnemar_p``.
    """
    if refusals not in REFUSAL_CONVENTIONS:
        raise ValueError(f"refusals must be one of {REFUSAL_CONVENTIONS}, got {refusals!r}")
    all_records = list(records)
    kept = [r for r in all_records if not (refusals == "excluded" and r.get("target") == "refusal")]
    errors = [{"id": r["id"], "reason": r["error"]} for r in kept if r.get("error")]
    if group_fields is None:
        group_fields = sorted({k for r in kept for k in (r.get("groups") or {})})
    summary = _run_summary(kept, kept, group_fields)
    summary["n_errors"] = len(errors)
    summary["errors"] = errors
    summary["n_samples"] = len(all_records)
    summary["refused"] = sum(bool(r.get("refused")) for r in kept)
    chances = [r["chance"] for r in kept if r.get("chance") is not None]
    summary["chance"] = _mean(chances)
    summary["official"] = official(kept, format, refusals)
    if any(r.get("target") == "refusal" for r in all_records):
        positives = [r for r in all_records if r.get("target") != "refusal"]
        summary["refusal_conventions"] = {
            "official": rate([bool(r["correct"]) for r in all_records]),
            "excluded": rate([bool(r["correct"]) for r in positives]),
            "used": refusals,
        }
    if any(r.get("base") for r in kept):
        # A sample that could not run is wrong for both models: it stays in the paired table.
        paired = [r for r in kept if r.get("base") or r.get("error")]
        base = [r["base"] if r.get("base") else _ERROR_OUTCOME for r in paired]
        summary["base"] = _run_summary(base, paired, group_fields)
        summary["base"]["official"] = official(
            [{**r, "correct": b["correct"]} for r, b in zip(paired, base, strict=True)], format, refusals
        )
        table = flips((bool(b["correct"]), bool(r["correct"])) for r, b in zip(paired, base, strict=True))
        summary["flips"] = table
        summary["outcome_flips"] = outcome_flips(
            (str(b.get("outcome")), str(r.get("outcome"))) for r, b in zip(paired, base, strict=True)
        )
        summary["mcnemar_p"] = mcnemar_exact(table["fixed"], table["broken"])
    return summary
