"""A forced batch (`lav eval --responses`, `lav run --response`) reads its answers' clicks before the
forward, which then records only the decoder rows the maps read: the coordinate digits' (or every
answer token's for an answer without coordinates, the refusal's for a refusal). The results must
be those of the forward that records every answer row (the rows against eager attention:
`tests/core/test_capture_decoder.py`)."""

from __future__ import annotations

import dataclasses

import pytest

import lav
import lav.analysis
from lav import stages

INSTRUCTION = "Click the red button"
RESPONSES = [
    "(120, 340)",
    # UI-TARS form (bytedance/UI-TARS codes/ui_tars/prompt.py): the Thought's point is not the click.
    "Thought: The icon at (31, 64) is greyed out.\nAction: click(start_box='(107,243)')",
    "I cannot see it",  # no coordinates: every answer token's row
]
#: Every method that reads decoder rows (focus_relative and focus_grad run passes of their own).
MAPS = ["focus_relative", "focus_sink_masked", "focus_grad"]


def _spy(monkeypatch, seen: list, every_row: bool) -> None:
    real = stages.run

    def run(*args, rows_at=None, **kwargs):
        ran = real(*args, rows_at=None if every_row else rows_at, **kwargs)
        seen.append({layer: sorted(rows) for layer, rows in ran.rec.rows.items()})
        return ran

    monkeypatch.setattr(lav.analysis, "run", run)


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_forced_batch_records_only_the_rows_its_maps_read_and_its_results_are_unchanged(
    family, checkpoint, screenshot, monkeypatch
):
    viz = lav.load(checkpoint(family), device="cpu")
    items = [{"image": screenshot, "instruction": INSTRUCTION, "response": r} for r in RESPONSES]

    seen: list = []
    _spy(monkeypatch, seen, every_row=True)
    every = viz.analyze_many(items, batch_size=3, maps=MAPS)
    _spy(monkeypatch, seen, every_row=False)
    chosen = viz.analyze_many(items, batch_size=3, maps=MAPS)

    for a, b in zip(chosen, every, strict=True):
        assert dataclasses.replace(a, timings={}) == dataclasses.replace(b, timings={})
    assert [r.click.raw if r.click else None for r in chosen] == [(120.0, 340.0), (107.0, 243.0), None]

    recorded_all, recorded = seen[0], seen[1]
    prepared = stages.prepare(
        viz, [stages.Request(screenshot.convert("RGB"), INSTRUCTION, r) for r in RESPONSES], 0
    )
    starts = prepared.answer_starts
    lengths = [len(r.answer_tokens) for r in chosen]
    # The tiny tokenizer writes one token per character: the digits' indices, counted here.
    digits = [[i for i, t in enumerate(r.answer_tokens) if t.isdigit()] for r in chosen]
    wanted = (
        {starts[0] - 1 + i for i in digits[0]}
        | {starts[1] - 1 + i for i in digits[1][4:]}
        | {starts[2] - 1 + i for i in range(lengths[2])}
    )
    assert all(rows == sorted(wanted) for rows in recorded.values())
    # Before: from the query that produces the earliest answer's first token to the sequence's end.
    every_row = list(range(min(starts) - 1, prepared.inputs["input_ids"].shape[1]))
    assert all(rows == every_row for rows in recorded_all.values())
    assert len(wanted) < max(lengths)  # not a degenerate check: fewer rows than every answer row
