"""Bytes that capture holds at its largest moment, counted from torch's own CPU allocator events.

The recorder's two statistics functions (`_vision_received`, `_decoder_rows`) are run inside a
profiler range; every allocation made inside it is capture's until the allocator frees that
address. The profiler also reports the allocator's running total, whose maximum is the call's peak.
Deterministic for one machine and thread count: no sampling, no resident-set noise.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import pytest
from torch.profiler import ProfilerActivity, profile, record_function

TAG = "lav.capture (measured)"


def _in_range(fn: Callable) -> Callable:
    def inner(*args, **kwargs):
        with record_function(TAG):
            return fn(*args, **kwargs)

    return inner


@contextmanager
def tagged_capture(monkeypatch: pytest.MonkeyPatch):
    """Run the recorder's statistics inside the profiler range `TAG` (looked up at call time)."""
    from lav.capture import recorder

    monkeypatch.setattr(recorder, "_vision_received", _in_range(recorder._vision_received))
    monkeypatch.setattr(recorder, "_decoder_rows", _in_range(recorder._decoder_rows))
    yield


def peaks(fn: Callable[[], object]) -> tuple[int, int]:
    """(capture's peak live bytes, the allocator's peak above the start) while ``fn()`` runs, CPU."""
    from torch._C._profiler import _EventType

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = []
    stack = [(e, False) for e in prof.profiler.kineto_results.experimental_event_tree()]
    while stack:
        event, ours = stack.pop()
        ours = ours or event.name == TAG
        if event.tag == _EventType.Allocation and str(event.extra_fields.device) == "cpu":
            f = event.extra_fields
            events.append((event.start_time_ns, f.ptr, f.alloc_size, f.total_allocated, ours))
        stack.extend((child, ours) for child in event.children)
    events.sort(key=lambda e: e[0])
    live: dict[int, int] = {}
    held = top = total = 0
    for _, ptr, size, running, ours in events:
        total = max(total, running)
        if size > 0 and ours:
            live[ptr] = size
            held += size
        elif size < 0 and ptr in live:
            held -= live.pop(ptr)
        top = max(top, held)
    return top, total
