"""Small HTML pieces the evaluation pages share (`lav.eval.report`, `lav.eval.report_outcomes`, the
evolve report): escaping, percentages, intervals and a plain table. Torch-free."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def ci_text(ci: Sequence[float] | None) -> str:
    return "–" if ci is None else f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}%"


def table_html(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"
