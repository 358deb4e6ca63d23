"""Recording attention statistics from a running Qwen-VL model without N x N memory."""

from __future__ import annotations

from .colsums import received, received_chunked
from .recorder import Backend, Recording, capture, model_lock, override, row_mask
from .views import decoder_allowed, decoder_rows, vision_received

__all__ = [
    "Backend",
    "Recording",
    "capture",
    "decoder_allowed",
    "decoder_rows",
    "model_lock",
    "override",
    "received",
    "received_chunked",
    "row_mask",
    "vision_received",
]
