"""`tokens_for_spans` selects exactly the tokens whose [start, end) offsets overlap a span, written
here as the definition (any offsets: zero-width, out of order, overlapping; any spans)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lav.coords import tokens_for_spans

pairs = st.tuples(st.integers(0, 40), st.integers(0, 40))


@given(st.lists(pairs, max_size=60), st.lists(pairs, max_size=5))
def test_selected_tokens_are_those_overlapping_a_span_by_definition(offsets, spans):
    expected = [
        i
        for i, (start, end) in enumerate(offsets)
        if end > start and any(start < s_end and end > s_start for s_start, s_end in spans)
    ]
    assert tokens_for_spans(offsets, spans) == expected


def test_a_long_answers_tokens_far_from_the_number_are_left_out():
    offsets = [(i, i + 1) for i in range(2000)]
    assert tokens_for_spans(offsets, [(1500, 1503), (1506, 1509)]) == [1500, 1501, 1502, 1506, 1507, 1508]
