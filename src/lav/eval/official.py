"""The numbers of each benchmark's official table, from the per-sample records (torch-free).

Each format names its all-samples (micro) accuracy and its headline average as the paper or the
official script names them, and the two-way tables its leaderboard shows. Sources:

- ScreenSpot v1/v2: njucckevin/SeeClick ``pretrain/screenspot_test.py`` l. 118 keeps one
  ``[text_acc, icon_acc]`` pair per split; ``readme.md`` l. 40-48's "Average" is the plain mean of
  those six split x type cells (macro: SeeClick's row, (78.0 + 52.0 + 72.2 + 30.0 + 55.7 + 32.5) / 6
  = 53.4).
- ScreenSpot-Pro: likaixin2000/ScreenSpot-Pro-GUI-Grounding ``eval_screenspot_pro.py``:
  ``evaluate_overall`` (l. 297) is the micro "Avg"; ``evaluate_leaderboard_simple_style`` (l. 267,
  by ``group``) and ``_detailed_style`` (l. 237, by ``application``) each with ``text_acc`` /
  ``icon_acc`` (``calc_metric_for_result_list`` l. 112-134): the group x ui_type and
  application x ui_type cells.
- UI-Vision: ServiceNow/ui-vision ``eval/grounding/eval_uivision.py`` scores one file per run
  (``evaluate_overall_simple``); the paper's "Final Avg" is the mean of the three files (macro).
- MMBench-GUI L2: open-compass/MMBench-GUI ``benchmarks/matrics.py`` ``level2_calculate_scores``
  (l. 91-167): per grounding_type x platform cells, "Basic accuracy" / "Advanced accuracy" micro
  within the level, "Average accuracy" the mean of the two levels.
- VenusBench-GD: inclusionAI/UI-Venus branch VenusBench-GD ``eval.py`` (ScreenSpot-Pro's
  functions, l. 132-330): micro overall, text / icon per platform and per task file.
- OSWorld-G: the accuracy over all samples (refusal samples scored, or left out: ``--refusals``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Spec:
    """How a benchmark's official table reads: names, the average's cells, the two-way tables."""

    benchmark: str
    micro: str
    macro: str | None = None
    #: One field: the mean of its groups' accuracies; two: the mean of the two-way cells.
    macro_over: tuple[str, ...] = ()
    tables: tuple[tuple[str, str], ...] = ()
    source: str = ""
    #: A grouping field whose value lists several categories joined by '|' (OSWorld-G's buckets):
    #: ``buckets`` gives each category's accuracy over every sample in it.
    multi: str | None = None


#: ``"type"`` stands for the format's element-type field (``data_type`` in SeeClick's files,
#: ``ui_type`` in GUI-Actor's copy), resolved from the records.
SPECS: dict[str, Spec] = {
    "screenspot": Spec(
        "ScreenSpot",
        micro="micro (all samples; not a column of SeeClick's table)",
        macro="Average",
        macro_over=("split", "type"),
        tables=(("split", "type"),),
        source="njucckevin/SeeClick pretrain/screenspot_test.py l. 118 and readme.md l. 40-48",
    ),
    "screenspot-pro": Spec(
        "ScreenSpot-Pro",
        micro="Avg",
        macro="macro (mean of the group x ui_type cells; not in the paper's table)",
        macro_over=("group", "ui_type"),
        tables=(("group", "ui_type"), ("application", "ui_type")),
        source="likaixin2000/ScreenSpot-Pro-GUI-Grounding eval_screenspot_pro.py l. 237-310",
    ),
    "ui-vision": Spec(
        "UI-Vision",
        micro="micro (all samples; not in the paper's table)",
        macro="Final Avg",
        macro_over=("split",),
        tables=(("split", "category"), ("split", "element_type")),
        source="ServiceNow/ui-vision eval/grounding/eval_uivision.py (one file per run); paper's Final Avg",
    ),
    "mmbench-gui": Spec(
        "MMBench-GUI L2",
        micro="micro (all samples; not in the paper's table)",
        macro="Average accuracy",
        macro_over=("grounding_type",),
        tables=(("grounding_type", "platform"), ("platform", "data_type")),
        source="open-compass/MMBench-GUI benchmarks/matrics.py l. 91-167",
    ),
    "venusbench-gd": Spec(
        "VenusBench-GD",
        micro="action_acc (overall)",
        macro="macro (mean of the task files; not in the paper's table)",
        macro_over=("split",),
        tables=(("split", "ui_type"), ("platform", "ui_type")),
        source="inclusionAI/UI-Venus@VenusBench-GD eval.py l. 132-330",
    ),
    "osworld-g": Spec(
        "OSWorld-G",
        micro="Overall",
        tables=(("box_type", "GUI_types"),),
        source="xlang-ai/OSWorld-G (accuracy over all samples; per category from its bucket file)",
        multi="bucket",
    ),
}
GENERIC = Spec("", micro="accuracy (all samples)")


def rate(hits: Sequence[bool]) -> dict[str, Any]:
    n = len(hits)
    k = sum(hits)
    return {"n": n, "correct": k, "accuracy": k / n if n else None}


def _field(name: str, records: Sequence[Record]) -> str | None:
    """The grouping field ``name`` stands for in these records, or None when none has it."""
    names = ("data_type", "ui_type") if name == "type" else (name,)
    for candidate in names:
        if any(candidate in (r.get("groups") or {}) for r in records):
            return candidate
    return None


def _cells(records: Sequence[Record], rows: str, cols: str | None) -> dict[str, dict[str, list[bool]]]:
    out: dict[str, dict[str, list[bool]]] = {}
    for r in records:
        groups = r.get("groups") or {}
        row = groups.get(rows)
        col = "all" if cols is None else groups.get(cols)
        if row is None or col is None:
            continue
        out.setdefault(str(row), {}).setdefault(str(col), []).append(bool(r["correct"]))
    return out


def table(records: Sequence[Record], rows: str, cols: str) -> dict[str, dict[str, dict[str, Any]]]:
    """``{row: {col: rate, "all": rate of the row}}`` over the records that have both fields."""
    cells = _cells(records, rows, cols)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for row in sorted(cells):
        out[row] = {col: rate(cells[row][col]) for col in sorted(cells[row])}
        out[row]["all"] = rate([h for col in cells[row].values() for h in col])
    return out


def official(records: Sequence[Record], fmt: str, refusals: str) -> dict[str, Any]:
    """The ``official`` block of ``summary.json`` for records of format ``fmt`` (already filtered
    by the ``refusals`` convention): micro, macro (named as the paper names it) and the tables."""
    spec = SPECS.get(fmt, GENERIC)
    out: dict[str, Any] = {
        "benchmark": spec.benchmark or fmt,
        "source": spec.source or None,
        "refusals": refusals,
        "micro": {"name": spec.micro, **rate([bool(r["correct"]) for r in records])},
        "macro": None,
        "tables": {},
    }
    for rows, cols in spec.tables:
        r_field, c_field = _field(rows, records), _field(cols, records)
        if r_field and c_field:
            out["tables"][f"{r_field} x {c_field}"] = table(records, r_field, c_field)
    if spec.multi and _field(spec.multi, records):
        per: dict[str, list[bool]] = {}
        for r in records:
            for name in str((r.get("groups") or {}).get(spec.multi, "")).split("|"):
                if name and name != "none":
                    per.setdefault(name, []).append(bool(r["correct"]))
        out["buckets"] = {name: rate(hits) for name, hits in sorted(per.items())}
    fields = [_field(f, records) for f in spec.macro_over]
    if spec.macro and fields and all(fields):
        cols = fields[1] if len(fields) == 2 else None
        cells = _cells(records, fields[0], cols)
        values = [sum(h) / len(h) for row in cells.values() for h in row.values() if h]
        label = " x ".join(f for f in fields if f)
        out["macro"] = {
            "name": spec.macro,
            "over": label,
            "cells": len(values),
            "accuracy": sum(values) / len(values) if values else None,
        }
    return out
