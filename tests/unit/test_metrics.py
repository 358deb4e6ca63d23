"""lav.metrics against values computed by hand, and free of torch."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from lav.metrics import (
    cell_coverage,
    chance_level,
    mass_in_box,
    point_in_box,
    pointing_game,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("x", "y", "box", "inside"),
    [
        (5, 2, (0, 0, 10, 5), True),
        (10, 5, (0, 0, 10, 5), True),  # the far corner is on both edges: inside
        (0, 0, (0, 0, 10, 5), True),
        (10.01, 5, (0, 0, 10, 5), False),
        (5, -0.01, (0, 0, 10, 5), False),
        (10, 5, (10, 5, 0, 0), True),  # reversed corners are put in order
        (3, 4, (10, 0, 0, 5), True),
    ],
)
def test_point_in_box_counts_edges_and_orders_corners(x, y, box, inside):
    assert point_in_box(x, y, box) is inside


def test_cell_coverage_is_the_share_of_each_cell_inside_the_box():
    # 2x2 grid on 20x20 px: 10 px cells; the box's corners sit in the middle of the cells.
    np.testing.assert_array_equal(cell_coverage((5, 5, 15, 15), (2, 2), (20, 20)), np.full((2, 2), 0.25))
    np.testing.assert_array_equal(cell_coverage((15, 15, 5, 5), (2, 2), (20, 20)), np.full((2, 2), 0.25))
    # Non-square cells: 4 columns of 20 px, 3 rows of 10 px on an 80x30 image.
    cov = cell_coverage((30, 10, 40, 20), (3, 4), (80, 30))
    expected = np.zeros((3, 4))
    expected[1, 1] = 0.5
    np.testing.assert_array_equal(cov, expected)
    # A box that only touches a cell's edge covers none of it.
    assert cell_coverage((10, 0, 20, 10), (2, 2), (20, 20))[0, 0] == 0.0


def test_pointing_game_uses_the_centre_of_the_maximum_cell():
    m = np.zeros((3, 4))
    m[1, 2] = 1.0  # 10x10 px cells on 40x30: centre (25, 15)
    assert pointing_game(m, (20, 10, 30, 20), (40, 30))
    assert pointing_game(m, (25, 15, 30, 20), (40, 30))  # centre on the box's corner
    assert not pointing_game(m, (26, 0, 40, 30), (40, 30))  # overlaps the cell, misses its centre
    # On an 80x30 image the same cell's centre is (50, 15).
    assert pointing_game(m, (45, 10, 55, 20), (80, 30))
    assert not pointing_game(m, (20, 10, 30, 20), (80, 30))


def test_pointing_game_takes_the_first_maximum_on_ties():
    m = np.ones((2, 2))
    assert pointing_game(m, (0, 0, 10, 10), (20, 20))
    assert not pointing_game(m, (10.5, 10.5, 20, 20), (20, 20))


def test_mass_in_box_weights_cells_by_their_covered_share():
    m = np.array([[1.0, 2.0], [3.0, 4.0]])  # total 10 on a 20x20 image, 10 px cells
    assert mass_in_box(m, (0, 0, 10, 10), (20, 20)) == pytest.approx(0.1)
    assert mass_in_box(m, (5, 0, 10, 10), (20, 20)) == pytest.approx(0.05)  # half of cell (0, 0)
    assert mass_in_box(m, (5, 5, 15, 15), (20, 20)) == pytest.approx(0.25)  # a quarter of each
    assert mass_in_box(m, (0, 0, 20, 20), (20, 20)) == pytest.approx(1.0)


def test_mass_in_box_ignores_negative_values_and_is_nan_without_mass():
    m = np.array([[-1.0, 1.0], [0.0, 0.0]])
    assert mass_in_box(m, (0, 0, 10, 10), (20, 20)) == 0.0
    assert mass_in_box(m, (10, 0, 20, 10), (20, 20)) == 1.0
    assert math.isnan(mass_in_box(np.zeros((2, 2)), (0, 0, 10, 10), (20, 20)))


def test_maps_that_are_not_finite_grids_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        pointing_game(np.array([[np.nan, 1.0]]), (0, 0, 1, 1), (2, 1))
    with pytest.raises(ValueError, match="grid_h, grid_w"):
        mass_in_box(np.ones(4), (0, 0, 1, 1), (2, 2))
    with pytest.raises(ValueError, match="positive"):
        chance_level((0, 0, 1, 1), (0, 10))


def test_chance_level_is_the_box_share_of_the_image():
    assert chance_level((0, 0, 10, 5), (20, 10)) == 0.25
    assert chance_level((10, 5, 0, 0), (20, 10)) == 0.25
    assert chance_level((-10, 0, 10, 5), (20, 10)) == 0.25  # clipped to the image
    assert chance_level((30, 0, 40, 5), (20, 10)) == 0.0


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # p = 0.5: centre 0.5, half-width 1.96 * sqrt(0.025 + 0.009604) / 1.38416 = 0.263410
        (5, 10, 0.236590, 0.763410),
        # k = 0: the interval starts at 0 and reaches 2 * 0.19208 / 1.38416 = 0.277540
        (0, 10, 0.0, 0.277540),
        (10, 10, 0.722460, 1.0),
        # p = 0.9, n = 100: Wilson (0.8256, 0.9448)
        (90, 100, 0.825633, 0.944771),
    ],
)
def test_wilson_interval_matches_hand_computed_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-5) and hi == pytest.approx(high, abs=1e-5)


def test_wilson_interval_edge_cases():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(5, 10, z=1.0)
    assert 0.5 - lo < 0.263410 and hi - 0.5 < 0.263410  # a smaller z gives a narrower interval
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_importing_metrics_imports_no_torch():
    code = "import sys, lav.metrics; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
