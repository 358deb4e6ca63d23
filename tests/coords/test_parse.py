"""Parsing grounding answers: every format, what is not coordinates, and the reasons for no click."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lav.coords import Parsed, explain_missing, parse_answer

# (answer, format, kind, values)
EXAMPLES = [
    ("(107, 243)", "tuple", "point", (107, 243)),
    ("[107,243]", "list", "point", (107, 243)),
    ("x=107, y=243", "key-value", "point", (107, 243)),
    ("x: 107, y: 243", "key-value", "point", (107, 243)),
    ('{"x": 107, "y": 243}', "key-value", "point", (107, 243)),
    ("click(107, 243)", "click", "point", (107, 243)),
    ("click(x=107, y=243)", "click", "point", (107, 243)),
    ("click(107, 243, button='left')", "click", "point", (107, 243)),
    ("pyautogui.click(x=107, y=243)", "pyautogui", "point", (107, 243)),
    ("pyautogui.click(107, 243)", "pyautogui", "point", (107, 243)),
    ('{"point_2d": [107, 243]}', "json-point_2d", "point", (107, 243)),
    ('[{"point_2d": [107, 243], "label": "Save"}]', "json-point_2d", "point", (107, 243)),
    (
        '```json\n[\n  {"bbox_2d": [10, 20, 30, 40], "label": "Save"}\n]\n```',
        "json-bbox_2d",
        "box",
        (10, 20, 30, 40),
    ),
    ("{'bbox_2d': [10, 20, 30, 40]}", "json-bbox_2d", "box", (10, 20, 30, 40)),
    ("<point>107 243</point>", "point-tag", "point", (107, 243)),
    ("<point>(107,243)</point>", "point-tag", "point", (107, 243)),
    ('<point x="61.5" y="40.2" alt="Save">Save</point>', "molmo-point", "point", (61.5, 40.2)),
    (
        '<points x1="61.5" y1="40.2" x2="70" y2="80" alt="Save">Save</points>',
        "molmo-point",
        "point",
        (61.5, 40.2),
    ),
    ("<|box_start|>(10,20),(30,40)<|box_end|>", "qwen2-vl-box", "box", (10, 20, 30, 40)),
    ("<|box_start|>(107,243)<|box_end|>", "qwen2-vl-point", "point", (107, 243)),
    ("Save button(10,20),(30,40)", "box-pairs", "box", (10, 20, 30, 40)),
    ("[10, 20, 30, 40]", "box-list", "box", (10, 20, 30, 40)),
    ("(10, 20, 30, 40)", "box-tuple", "box", (10, 20, 30, 40)),
    ("(0.42, 0.77)", "tuple", "point", (0.42, 0.77)),
    ("( -12 ,\t-7.5 )", "tuple", "point", (-12, -7.5)),
    ("[.5, .25]", "list", "point", (0.5, 0.25)),
]


@pytest.mark.parametrize(("answer", "fmt", "kind", "values"), EXAMPLES, ids=[e[0][:40] for e in EXAMPLES])
def test_each_format_gives_its_values_kind_and_name(answer, fmt, kind, values):
    parsed = parse_answer(answer)
    assert parsed is not None
    assert (parsed.format, parsed.kind, parsed.values) == (fmt, kind, tuple(float(v) for v in values))


@pytest.mark.parametrize(("answer", "fmt", "kind", "values"), EXAMPLES, ids=[e[0][:40] for e in EXAMPLES])
def test_spans_point_at_the_written_numbers(answer, fmt, kind, values):
    parsed = parse_answer(answer)
    assert parsed is not None
    xs = [float(answer[a:b]) for a, b in parsed.x_spans]
    ys = [float(answer[a:b]) for a, b in parsed.y_spans]
    assert xs == [float(v) for v in values[0::2]]
    assert ys == [float(v) for v in values[1::2]]


def test_text_around_the_coordinates_is_ignored():
    parsed = parse_answer("I will click (107, 243) to save the file.")
    assert parsed is not None
    assert parsed.values == (107.0, 243.0)
    assert parsed.x_spans == ((14, 17),)
    assert parsed.y_spans == ((19, 22),)


def test_box_answer_clicks_box_centre():
    parsed = parse_answer('{"bbox_2d": [100, 200, 300, 500]}')
    assert parsed is not None
    assert parsed.point == (200.0, 350.0)


def test_point_answer_point_is_its_values():
    parsed = parse_answer("(3, 4)")
    assert parsed is not None and parsed.point == (3.0, 4.0)


def test_without_a_marker_the_last_coordinates_in_the_text_win():
    # A model reasoning in prose names other points on its way to the answer (issue 21).
    parsed = parse_answer("Either (1, 2) or x=5, y=6 or [7, 8]")
    assert parsed is not None and parsed.values == (7.0, 8.0)
    parsed = parse_answer("not (1, 2) but x=5, y=6")
    assert parsed is not None and parsed.values == (5.0, 6.0)


def test_json_object_wins_over_a_tuple_inside_its_label():
    parsed = parse_answer('{"label": "icon (1, 2)", "point_2d": [500, 600]}')
    assert parsed is not None
    assert (parsed.format, parsed.values) == ("json-point_2d", (500.0, 600.0))


def test_two_point_pairs_are_one_box_not_a_point():
    parsed = parse_answer("(10,20),(30,40)")
    assert parsed is not None and parsed.kind == "box"


def test_full_stop_after_a_number_is_not_a_decimal():
    parsed = parse_answer("x=3, y=4.")
    assert parsed is not None
    assert parsed.values == (3.0, 4.0) and parsed.y_spans == ((7, 8),) and not parsed.has_decimal


def test_has_decimal_when_any_number_is_written_with_a_point():
    assert parse_answer("(1, 2.0)").has_decimal  # type: ignore[union-attr]
    assert not parse_answer("(1, 2)").has_decimal  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "answer",
    [
        "Version 2, 3 windows",
        "Step 1, then 2",
        "(1, 2, 3)",
        "[1]",
        "max=3, y=4",
        "the Save button",
        "",
        "(" + "9" * 400 + ", 1)",
    ],
)
def test_no_coordinates_without_a_bracket_tag_or_key(answer):
    assert parse_answer(answer) is None


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("", "the answer is empty"),
        ("  \n ", "the answer is empty"),
        ("I cannot find a Save button.", "the answer has no numbers"),
        ("Click item 3", "the answer has one number, a click needs two"),
    ],
)
def test_missing_coordinates_are_explained(answer, reason):
    assert explain_missing(answer) == reason


def test_numbers_in_no_format_are_counted_and_formats_suggested():
    reason = explain_missing("Version 2, 3 windows")
    assert reason.startswith("the answer has 2 numbers but none in a coordinate format")
    assert "(x, y)" in reason


def test_explain_missing_does_not_claim_a_parsable_answer_is_missing():
    assert "nothing is missing" in explain_missing("(1, 2)")


# --- property tests -----------------------------------------------------------------------------

# Literal pieces between the numbers of each format.
POINT_TEMPLATES = [
    ("tuple", ("(", ", ", ")")),
    ("tuple", ("(", ",", ")")),
    ("tuple", ("(  ", " ,\t", " )")),
    ("list", ("[", ", ", "]")),
    ("key-value", ("x=", ", y=", "")),
    ("key-value", ("x: ", ", y: ", "")),
    ("click", ("click(", ", ", ")")),
    ("click", ("click(x=", ", y=", ")")),
    ("pyautogui", ("pyautogui.click(x=", ", y=", ")")),
    ("pyautogui", ("pyautogui.click(", ", ", ")")),
    ("json-point_2d", ('{"point_2d": [', ", ", "]}")),
    ("json-point_2d", ('[{"point_2d": [', ", ", '], "label": "Save"}]')),
    ("point-tag", ("<point>", " ", "</point>")),
    ("point-tag", ("<point>(", ",", ")</point>")),
    ("molmo-point", ('<point x="', '" y="', '" alt="Save">Save</point>')),
    ("qwen2-vl-point", ("<|box_start|>(", ",", ")<|box_end|>")),
]
BOX_TEMPLATES = [
    ("json-bbox_2d", ('{"bbox_2d": [', ", ", ", ", ", ", "]}")),
    ("json-bbox_2d", ('[{"bbox_2d": [', ", ", ", ", ", ", '], "label": "Save"}]')),
    ("qwen2-vl-box", ("<|box_start|>(", ",", "),(", ",", ")<|box_end|>")),
    ("box-pairs", ("(", ",", "),(", ",", ")")),
    ("box-list", ("[", ", ", ", ", ", ", "]")),
    ("box-tuple", ("(", ", ", ", ", ", ", ")")),
]

# Any text without digits: Python's \d also matches non-ASCII decimal digits, so exclude them all.
# ... and without the markers of a final answer ("<answer>", "Action:", ...) or a refusal phrase, which
# move what is read (tests/coords/test_answer_corpus.py covers them).
_MARKERS = ("<answer>", "<tool_call>", "action:", "think", "target", "element", "not present")
no_digits = st.text(st.characters(exclude_categories=("Nd", "Cs")), max_size=25).filter(
    lambda t: not any(m in t.lower() for m in _MARKERS)
)
written_int = st.integers(-5000, 5000).map(str)
written_float = st.builds(
    lambda v, d: f"{v:.{d}f}", st.floats(-5000, 5000, allow_nan=False), st.integers(1, 4)
)
written_number = st.one_of(written_int, written_float)


def _assemble(prefix: str, pieces: tuple[str, ...], numbers: list[str], suffix: str):
    text, spans = prefix + " " + pieces[0], []
    for number, piece in zip(numbers, pieces[1:], strict=True):
        spans.append((len(text), len(text) + len(number)))
        text += number + piece
    return text + " " + suffix, spans


@settings(max_examples=400)
@given(
    st.sampled_from(POINT_TEMPLATES + BOX_TEMPLATES),
    st.lists(written_number, min_size=4, max_size=4),
    no_digits,
    no_digits,
)
def test_formatted_numbers_parse_back_with_spans_on_their_characters(template, numbers, prefix, suffix):
    fmt, pieces = template
    numbers = numbers[: len(pieces) - 1]
    text, spans = _assemble(prefix, pieces, numbers, suffix)

    parsed = parse_answer(text)

    assert parsed is not None, text
    assert parsed.format == fmt
    assert parsed.kind == ("point" if len(numbers) == 2 else "box")
    assert parsed.values == tuple(float(n) for n in numbers)
    assert parsed.x_spans == tuple(spans[0::2])
    assert parsed.y_spans == tuple(spans[1::2])
    assert [text[a:b] for a, b in parsed.x_spans + parsed.y_spans] == numbers[0::2] + numbers[1::2]
    assert parsed.has_decimal == any("." in n for n in numbers)


@given(no_digits)
def test_text_without_digits_has_no_coordinates(text):
    assert parse_answer(text) is None
    assert explain_missing(text) == "the answer is empty" or explain_missing(text).endswith(
        ("is empty", "has no numbers", "cut off? reasoning models need max_new_tokens of 512 or more)")
    )


def test_parsed_is_frozen():
    parsed = parse_answer("(1, 2)")
    assert isinstance(parsed, Parsed)
    with pytest.raises(AttributeError):
        parsed.kind = "box"  # type: ignore[misc]
