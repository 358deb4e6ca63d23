"""The answer corpus (tests/coords/answer_corpus.py): real answers of today's grounders, each read as
its authors read it: the final answer after any reasoning, every candidate, refusals as refusals."""

from __future__ import annotations

import pytest

from lav.coords import (
    ABSOLUTE_ORIGINAL,
    RELATIVE_100,
    RELATIVE_999,
    RELATIVE_1000,
    RELATIVE_1000_YX,
    AnswerRules,
    explain_missing,
    parse_answer,
    resolve_convention,
    to_click,
)

from .answer_corpus import CORPUS

IDS = [f"{n:02d}-{e['source'].split(',')[0][:40]}" for n, e in enumerate(CORPUS)]


def _floats(values):
    return None if values is None else tuple(float(v) for v in values)


@pytest.mark.parametrize("entry", CORPUS, ids=IDS)
def test_corpus_answer_is_read_as_its_authors_read_it(entry):
    text = entry["text"]
    parsed = parse_answer(text, entry.get("rules"))

    if entry["span"] is None:
        assert parsed is None, text
        return
    assert parsed is not None, text
    assert parsed.format == entry["format"]
    assert (parsed.refusal is not None) == entry["refused"]
    assert parsed.values == (_floats(entry["values"]) or ())
    assert list(parsed.candidates) == [_floats(c) for c in entry["candidates"]]
    start, end = parsed.answer_span
    assert text[start:end] == entry["span"]


@pytest.mark.parametrize(
    "entry", [e for e in CORPUS if e["values"] is not None], ids=lambda e: e["text"][:30]
)
def test_corpus_number_spans_are_the_final_answers_digits(entry):
    """The focus rows come from these spans: they must lie inside the final answer and spell its values."""
    text = entry["text"]
    parsed = parse_answer(text, entry.get("rules"))
    assert parsed is not None
    start, end = parsed.answer_span
    spans = [*parsed.x_spans, *parsed.y_spans]
    assert all(start <= a < b <= end for a, b in spans)
    written = [text[a:b].translate({0xFF10 + d: str(d) for d in range(10)}) for a, b in spans]
    values = parsed.values
    assert [float(w) for w in written] == [*values[0::2], *values[1::2]]


def test_a_coordinate_in_the_reasoning_is_not_the_click():
    # On main the first coordinates won: (102, 37) from the Thought.
    text = next(e["text"] for e in CORPUS if e["text"].startswith("Thought: The Save icon"))
    parsed = parse_answer(text)
    assert parsed is not None and parsed.values == (523.0, 287.0)
    assert text[parsed.x_spans[0][0] : parsed.x_spans[0][1]] == "523"
    assert parsed.x_spans[0][0] > text.index("Action:")


def test_refusal_sentinels_and_phrases_follow_the_rules():
    # Without sentinels (a model whose -1 is a real pixel) [-1, -1] is a click off the image.
    plain = parse_answer("[-1, -1]", AnswerRules(refusal_phrases=(), refusal_sentinels=()))
    assert plain is not None and plain.refusal is None
    click = to_click(plain, RELATIVE_1000, (100, 100), (200, 100))
    assert not click.in_range and not click.inside_image
    # A model that refuses with -100: its own sentinel.
    own = parse_answer("(-100, -100)", AnswerRules(refusal_sentinels=((-100.0, -100.0),)))
    assert own is not None and own.refusal is not None
    # Phrases match in any case, only in the final answer.
    said = parse_answer("<think>target does not exist? no, it is there</think>[10, 20]")
    assert said is not None and said.refusal is None and said.values == (10.0, 20.0)
    assert parse_answer("<answer>TARGET DOES NOT EXIST</answer>").refusal is not None  # type: ignore[union-attr]


def test_a_phrase_before_the_last_coordinates_of_unmarked_text_does_not_refuse():
    parsed = parse_answer("No such element at first glance, but the icon is at (40, 50)")
    assert parsed is not None and parsed.refusal is None
    parsed = parse_answer("I looked at (40, 50): no such element")
    assert parsed is not None and parsed.refusal == "the answer says 'no such element'"


def test_a_refusal_has_no_click():
    parsed = parse_answer("[-1, -1]")
    assert parsed is not None and parsed.refusal is not None
    with pytest.raises(ValueError, match="refusal"):
        to_click(parsed, RELATIVE_1000, (100, 100), (100, 100))


def test_cut_off_reasoning_says_to_raise_max_new_tokens():
    reason = explain_missing("<think>The Save button is at (100, 200), but the dialog")
    assert "inside <think>" in reason and "max_new_tokens" in reason
    assert explain_missing("<answer></answer>") == "the final answer (inside <answer>) is empty"


# --- conventions the corpus's models answer in, computed by hand --------------------------------


def _entry(prefix: str) -> dict:
    return next(e for e in CORPUS if e["source"].startswith(prefix))


def test_step_gui_reads_on_0_to_999():
    parsed = parse_answer(_entry("Step-GUI, quoted")["text"])  # point:107,611
    click = to_click(parsed, RELATIVE_999, (1288, 812), (1998, 999))
    assert (click.x, click.y) == (107 * 1998 / 999, 611 * 999 / 999)


def test_gemini_box_2d_is_y_first_and_picks_its_convention():
    parsed = parse_answer(_entry("Gemini")["text"])  # box_2d [120, 340, 180, 520] = ymin xmin ymax xmax
    assert resolve_convention(parsed, RELATIVE_1000, None) == RELATIVE_1000_YX
    click = to_click(parsed, RELATIVE_1000_YX, (1288, 812), (2000, 1000))
    assert click.box == (340 * 2.0, 120 * 1.0, 520 * 2.0, 180 * 1.0)
    assert (click.x, click.y) == ((340 + 520) / 2 * 2.0, (120 + 180) / 2 * 1.0)
    assert click.raw == (120.0, 340.0, 180.0, 520.0)  # as written


def test_absolute_original_and_0_to_100_scales():
    parsed = parse_answer("(960, 540)")
    click = to_click(parsed, ABSOLUTE_ORIGINAL, (1288, 812), (1920, 1080))
    assert (click.x, click.y) == (960.0, 540.0) and click.in_range
    outside = to_click(parsed, ABSOLUTE_ORIGINAL, (1288, 812), (800, 600))
    assert not outside.in_range and "800x600 px original image" in outside.warning
    molmo = to_click(parse_answer("(61.5, 40.2)"), RELATIVE_100, (1288, 812), (2000, 1000))
    assert (molmo.x, molmo.y) == (61.5 * 20, 40.2 * 10)


def test_candidates_are_converted_like_the_click():
    parsed = parse_answer(_entry("InfiGUI-G1, quoted")["text"])
    click = to_click(parsed, "absolute-resized", (1288, 812), (2576, 1624))
    assert click.candidates == ((2014.0, 1848.0), (2042.0, 148.0))
    assert click.candidates[0] == (click.x, click.y)
