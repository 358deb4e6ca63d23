"""The numbers of each benchmark's official table, from the per-sample records (torch-free).

Each format names its all-samples (micro) accuracy and its headline average as the paper or the
official script names them, and the two-way tables its leaderboard shows: its `Spec`, kept in the
format's own record (``official`` in `lav.eval.formats`, with the sources of each rule). A format
without one gets the accuracy alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .formats import REGISTRY, Spec

Record = Mapping[str, Any]


#: ``"type"`` in a spec stands for the format's element-type field (``data_type`` in SeeClick's files,
#: ``ui_type`` in GUI-Actor's copy), resolved from the records.
SPECS: dict[str, Spec] = {f.name: f.official for f in REGISTRY if f.official is not None}
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


def _ordered(values, names: tuple[tuple[str, str], ...]) -> list[str]:
    """``values`` in the order the paper's table gives them (`Spec.names`), the others sorted after."""
    listed = [v for v, _ in names if v in values]
    return listed + sorted(v for v in values if v not in listed)


def table(
    records: Sequence[Record], rows: str, cols: str, names: tuple[tuple[str, str], ...] = ()
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{row: {col: rate, "all": rate of the row}}`` over the records that have both fields; the
    columns named and ordered as `Spec.names` says (then sorted)."""
    cells = _cells(records, rows, cols)
    order = _ordered({c for row in cells.values() for c in row}, names)
    shown = dict(names)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for row in sorted(cells):
        out[row] = {shown.get(col, col): rate(cells[row][col]) for col in order if col in cells[row]}
        out[row]["all"] = rate([h for col in cells[row].values() for h in col])
    return out


def totals(
    records: Sequence[Record], rows: str, cols: str, names: tuple[tuple[str, str], ...] = ()
) -> dict[str, dict[str, Any]]:
    """The bottom line of `table`: ``{col: rate over every row, "all": rate}`` (ScreenSpot-Pro's
    overall text / icon, UI-Vision's per-category accuracy over the three files)."""
    cells = _cells(records, rows, cols)
    per: dict[str, list[bool]] = {}
    for row in cells.values():
        for col, hits in row.items():
            per.setdefault(col, []).extend(hits)
    shown = dict(names)
    out = {shown.get(col, col): rate(per[col]) for col in _ordered(set(per), names)}
    out["all"] = rate([h for hits in per.values() for h in hits])
    return out


def official(records: Sequence[Record], fmt: str, refusals: str) -> dict[str, Any]:
    """The ``official`` block of ``summary.json`` for records of format ``fmt`` (already filtered
    by the ``refusals`` convention): micro, macro (named as the paper names it), the two-way tables
    and their bottom lines (``totals``), and the categories a sample may share (``buckets``)."""
    spec = SPECS.get(fmt, GENERIC)
    out: dict[str, Any] = {
        "benchmark": spec.benchmark or fmt,
        "source": spec.source or None,
        "refusals": refusals,
        "micro": {"name": spec.micro, **rate([bool(r["correct"]) for r in records])},
        "macro": None,
        "tables": {},
        "totals": {},
    }
    for rows, cols in spec.tables:
        r_field, c_field = _field(rows, records), _field(cols, records)
        if r_field and c_field:
            key = f"{r_field} x {c_field}"
            out["tables"][key] = table(records, r_field, c_field, spec.names)
            out["totals"][key] = totals(records, r_field, c_field, spec.names)
    if spec.multi and _field(spec.multi, records):
        per: dict[str, list[bool]] = {}
        for r in records:
            for name in str((r.get("groups") or {}).get(spec.multi, "")).split("|"):
                if name and name != "none":
                    per.setdefault(name, []).append(bool(r["correct"]))
        shown = dict(spec.names)
        out["buckets"] = {shown.get(v, v): rate(per[v]) for v in _ordered(set(per), spec.names)}
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
