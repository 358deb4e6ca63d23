"""Recording attention statistics from a running Qwen-VL model without N x N memory."""

from __future__ import annotations

from .colsums import received, received_chunked
from .recorder import Recording, capture
from .views import decoder_allowed, decoder_rows, vision_received

__all__ = [
    "Recording",
    "capture",
    "decoder_allowed",
    "decoder_rows",
    "received",
    "received_chunked",
    "vision_received",
]
