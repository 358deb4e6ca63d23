"""Coordinate conventions: choosing one, converting to original-image pixels, flagging misfits."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lav.coords import (
    ABSOLUTE_RESIZED,
    CONVENTIONS,
    NORMALIZED_1,
    RELATIVE_1000,
    Parsed,
    parse_answer,
    resolve_convention,
    to_click,
)
from lav.errors import InputError, LavError


def _point(x: float, y: float, decimal: bool = False) -> Parsed:
    return Parsed("point", (x, y), ((0, 1),), ((2, 3),), "tuple", decimal)


def _parse(text: str) -> Parsed:
    parsed = parse_answer(text)
    assert parsed is not None
    return parsed


sides = st.integers(1, 6000)


# --- resolve_convention --------------------------------------------------------------------------


def test_override_wins_over_family_default_and_decimals():
    assert resolve_convention(_parse("(0.4, 0.7)"), RELATIVE_1000, ABSOLUTE_RESIZED) == ABSOLUTE_RESIZED


def test_unknown_override_raises_input_error_listing_valid_names():
    with pytest.raises(InputError) as err:
        resolve_convention(_parse("(1, 2)"), RELATIVE_1000, "pixels")
    assert isinstance(err.value, LavError)
    for name in CONVENTIONS:
        assert name in str(err.value)
    assert "'pixels'" in str(err.value)


def test_unknown_family_default_raises_input_error():
    with pytest.raises(InputError):
        resolve_convention(_parse("(1, 2)"), "percent", None)


@pytest.mark.parametrize("family", [RELATIVE_1000, ABSOLUTE_RESIZED])
def test_decimals_within_unit_interval_are_read_as_fractions(family):
    assert resolve_convention(_parse("(0.42, 0.77)"), family, None) == NORMALIZED_1
    assert resolve_convention(_parse("(0, 1.0)"), family, None) == NORMALIZED_1


@pytest.mark.parametrize("answer", ["(0, 1)", "(0.5, 1.5)", "(-0.5, 0.5)", "(12.5, 40.25)"])
def test_family_default_kept_unless_all_decimals_within_unit_interval(answer):
    assert resolve_convention(_parse(answer), RELATIVE_1000, None) == RELATIVE_1000


def test_normalized_family_stays_normalized():
    assert resolve_convention(_parse("(0, 1)"), NORMALIZED_1, None) == NORMALIZED_1


# --- to_click arithmetic -------------------------------------------------------------------------


def test_relative_1000_scales_by_original_size():
    click = to_click(_point(500, 250), RELATIVE_1000, (1288, 812), (1920, 1080))
    assert (click.x, click.y) == (960.0, 270.0)
    assert click.convention == RELATIVE_1000 and click.in_range and click.inside_image
    assert click.warning is None


def test_absolute_resized_scales_by_resized_to_original_ratio():
    click = to_click(_point(644, 406), ABSOLUTE_RESIZED, (1288, 812), (1920, 1080))
    assert (click.x, click.y) == (960.0, 540.0)


def test_normalized_scales_by_original_size():
    click = to_click(_point(0.25, 0.5, decimal=True), NORMALIZED_1, (1288, 812), (1920, 1080))
    assert (click.x, click.y) == (480.0, 540.0)


def test_box_answer_clicks_box_centre_in_original_pixels():
    click = to_click(_parse("[100, 200, 300, 400]"), ABSOLUTE_RESIZED, (1000, 1000), (2000, 500))
    assert click.kind == "box"
    assert click.box == (200.0, 100.0, 600.0, 200.0)
    assert (click.x, click.y) == (400.0, 150.0)
    assert click.raw == (100.0, 200.0, 300.0, 400.0)


def _encode(px: float, py: float, convention: str, resized, original) -> tuple[float, float]:
    """Original-image pixels written in ``convention``: the inverse of to_click."""
    if convention == RELATIVE_1000:
        return px / original[0] * 1000, py / original[1] * 1000
    if convention == ABSOLUTE_RESIZED:
        return px * resized[0] / original[0], py * resized[1] / original[1]
    if convention == "absolute-original":
        return px, py
    if convention == "relative-999":
        return px / original[0] * 999, py / original[1] * 999
    if convention == "relative-100":
        return px / original[0] * 100, py / original[1] * 100
    if convention == "relative-1000-yx":  # written y first
        return py / original[1] * 1000, px / original[0] * 1000
    assert convention == NORMALIZED_1
    return px / original[0], py / original[1]


@given(
    st.sampled_from(CONVENTIONS),
    sides,
    sides,
    sides,
    sides,
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_to_click_inverts_the_convention_arithmetic(convention, w, h, rw, rh, fx, fy):
    original, resized = (w, h), (rw, rh)
    px, py = fx * w, fy * h
    raw = _encode(px, py, convention, resized, original)

    click = to_click(_point(*raw), convention, resized, original)

    assert math.isclose(click.x, px, rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(click.y, py, rel_tol=1e-9, abs_tol=1e-9)
    assert click.inside_image and click.in_range and click.warning is None


@given(sides, sides, sides, sides)
def test_relative_1000_of_0_and_1000_are_the_image_edges(w, h, rw, rh):
    top_left = to_click(_point(0, 0), RELATIVE_1000, (rw, rh), (w, h))
    bottom_right = to_click(_point(1000, 1000), RELATIVE_1000, (rw, rh), (w, h))
    assert (top_left.x, top_left.y) == (0.0, 0.0)
    assert (bottom_right.x, bottom_right.y) == (float(w), float(h))
    # The 0-1000 scale's top is open: 1000 is in range and on the image.
    assert bottom_right.in_range and bottom_right.inside_image and bottom_right.warning is None


@given(sides, sides, st.integers(1001, 100_000), st.integers(0, 1000))
def test_relative_values_over_1000_are_flagged_and_kept(w, h, x, y):
    click = to_click(_point(x, y), RELATIVE_1000, (10_000_000, 10_000_000), (w, h))
    assert click.x == x * w / 1000  # kept, not clipped to the border
    assert click.x > w
    assert not click.in_range and not click.inside_image
    assert click.warning is not None and f"x={x}" in click.warning
    assert f"y={y}" not in click.warning
    assert click.drawing_point(w, h) == (float(w), click.y)


def test_warning_suggests_absolute_when_values_fit_the_resized_image():
    click = to_click(_point(1432, 300), RELATIVE_1000, (1988, 1120), (2560, 1440))
    assert click.warning == (
        "x=1432 is outside the 0–1000 relative scale: the model may answer in another convention; "
        "pass coords='absolute-resized' if so"
    )


def test_warning_suggests_relative_when_absolute_values_overflow_the_resized_image():
    click = to_click(_point(900, 950), ABSOLUTE_RESIZED, (812, 644), (1920, 1080))
    assert not click.in_range
    assert click.warning is not None
    assert click.warning.startswith("x=900 and y=950 are outside the 812x644 px resized image")
    assert "coords='relative-1000'" in click.warning


def test_negative_values_fit_no_convention():
    click = to_click(_point(-5, 300), RELATIVE_1000, (1000, 1000), (1000, 1000))
    assert click.x == -5.0 and not click.inside_image and not click.in_range
    assert click.warning is not None and "no convention fits" in click.warning
    assert click.drawing_point(1000, 1000) == (0.0, 300.0)


def test_box_corner_out_of_range_is_named_by_corner():
    click = to_click(_parse("[10, 20, 1200, 40]"), RELATIVE_1000, (2000, 2000), (100, 100))
    assert click.warning is not None and click.warning.startswith("x2=1200 is outside")
    assert click.box == (1.0, 2.0, 120.0, 4.0)


def test_normalized_over_one_is_flagged():
    click = to_click(_point(1.5, 0.5, decimal=True), NORMALIZED_1, (100, 100), (200, 200))
    assert click.x == 300.0 and not click.in_range
    assert "0–1 normalized range" in (click.warning or "")


def test_unknown_convention_in_to_click_raises_input_error():
    with pytest.raises(InputError, match="relative-1000"):
        to_click(_point(1, 2), "relative", (100, 100), (100, 100))


@pytest.mark.parametrize("bad", [(0, 100), (100, -1), (100,), None])
def test_bad_sizes_raise_input_error(bad):
    with pytest.raises(InputError):
        to_click(_point(1, 2), RELATIVE_1000, bad, (100, 100))
    with pytest.raises(InputError):
        to_click(_point(1, 2), RELATIVE_1000, (100, 100), bad)


def test_to_dict_is_plain_json():
    click = to_click(_parse("[100, 200, 300, 400]"), RELATIVE_1000, (1000, 1000), (2000, 1000))
    data = json.loads(json.dumps(click.to_dict()))
    assert data == {
        "x": 400.0,
        "y": 300.0,
        "raw": [100.0, 200.0, 300.0, 400.0],
        "kind": "box",
        "convention": RELATIVE_1000,
        "box": [200.0, 200.0, 600.0, 400.0],
        "in_range": True,
        "inside_image": True,
        "warning": None,
        "candidates": [[400.0, 300.0]],
        # Filled in by lav.confidence from the pass's scores; a click made from text alone has none.
        "confidence": None,
        "digits": [],
        "alternatives": [],
    }


def test_point_click_has_no_box():
    click = to_click(_point(1, 2), RELATIVE_1000, (100, 100), (100, 100))
    assert click.box is None and click.to_dict()["box"] is None
