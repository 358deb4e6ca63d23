"""Rendering: map layers and overlays as PIL images, and the self-contained HTML report.

Takes plain data only (numpy maps on the patch grid, PIL images, dicts), never model objects, so
the CLI, the notebook display and the server all draw the same pictures from a saved result.
`views` (imported on first use, by `Result.overlay` / `save` / `_repr_html_`) reads those from a
`Result` record.
"""

from __future__ import annotations

from .html import report_html
from .overlay import (
    CLICK_GREEN,
    CLICK_MARKER,
    DIFF_NEGATIVE,
    DIFF_POSITIVE,
    RenderError,
    diff_layer,
    draw_click,
    edge_layer,
    focus_layer,
    overlay,
    scaled,
    to_png,
)

__all__ = [
    "CLICK_GREEN",
    "CLICK_MARKER",
    "DIFF_NEGATIVE",
    "DIFF_POSITIVE",
    "RenderError",
    "diff_layer",
    "draw_click",
    "edge_layer",
    "focus_layer",
    "overlay",
    "report_html",
    "scaled",
    "to_png",
]
