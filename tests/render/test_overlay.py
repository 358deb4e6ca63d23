"""Map layers, the crosshair and the composite: exact colours on exact pixel blocks."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from lav.errors import InputError
from lav.render import (
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
    to_png,
)

# Odd, non-square and not a multiple of the grid anywhere, so rounding mistakes show.
SIZE = (101, 77)
GREY = (90, 120, 150)


def _screenshot(size=SIZE, colour=GREY) -> Image.Image:
    return Image.new("RGB", size, colour)


def _noisy_screenshot(size=SIZE, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def _q8(x: float) -> int:
    return math.floor(x + 0.5)


def _blend(dst: np.ndarray, rgb: tuple[int, int, int], a8: int) -> np.ndarray:
    """Source-over of an 8-bit RGBA colour on an opaque image, in float (unrounded)."""
    a = a8 / 255.0
    return np.asarray(rgb, float) * a + dst.astype(float) * (1.0 - a)


def _block(size, grid, row, col):
    """Pixel rows/cols of patch (row, col): a patch covers [j*W/gw, (j+1)*W/gw) by pixel centre."""
    w, h = size
    gh, gw = grid
    xs = [x for x in range(w) if math.floor((x + 0.5) * gw / w) == col]
    ys = [y for y in range(h) if math.floor((y + 0.5) * gh / h) == row]
    return slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1)


# --- crosshair ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("x", "y"), [(50.4, 38.6), (0.2, 76.0), (100.0, 0.0), (37.5, 12.49)])
def test_draw_click_marks_the_rounded_click_pixel(x, y):
    out = np.array(draw_click(_screenshot(), x, y))
    assert tuple(out[round(y), round(x)]) == CLICK_MARKER


def test_draw_click_leaves_pixels_far_from_the_click_untouched():
    base = _noisy_screenshot()
    out = np.array(draw_click(base, 50.4, 38.6))
    changed = np.argwhere((out != np.array(base)).any(axis=2))
    assert len(changed) > 0
    # Every changed pixel is near the click and only crosshair colours are used.
    assert np.abs(changed - [39, 50]).max() <= 20
    colours = {tuple(out[r, c]) for r, c in changed}
    assert colours <= {CLICK_MARKER, CLICK_GREEN}
    assert CLICK_GREEN in colours


def test_draw_click_does_not_modify_its_input():
    base = _noisy_screenshot()
    before = np.array(base).copy()
    draw_click(base, 10, 10)
    np.testing.assert_array_equal(np.array(base), before)


def test_crosshair_scales_with_the_image_size():
    def extent(size):
        out = np.array(draw_click(Image.new("RGB", size), size[0] / 2, size[1] / 2))
        cols = np.argwhere(out.any(axis=2))[:, 1]
        return cols.max() - cols.min() + 1

    small, big = extent((100, 100)), extent((3840, 2160))
    assert 10 <= small <= 50  # visible but not covering a 100 px screenshot
    assert big >= 10 * small / 2 and big <= 3840 * 0.15


def test_click_outside_the_image_is_drawn_hollow_at_the_border():
    base = _screenshot()
    out = np.array(draw_click(base, -30.0, 40.0))
    # Clipped onto column 0, but no centre dot: the marker is hollow.
    assert tuple(out[40, 0]) != CLICK_MARKER
    assert (out[:, :20] != np.array(base)[:, :20]).any()
    assert (out[:, 40:] == np.array(base)[:, 40:]).all()


def test_draw_click_keeps_rgba_and_makes_crosshair_opaque():
    base = Image.new("RGBA", (31, 31), (0, 0, 0, 0))
    out = np.array(draw_click(base, 15, 15))
    assert out.shape == (31, 31, 4)
    assert tuple(out[15, 15]) == CLICK_MARKER + (255,)


def test_non_finite_click_is_refused():
    with pytest.raises(ValueError, match="finite"):
        draw_click(_screenshot(), float("nan"), 3.0)


# --- map layers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("v", [1.0, 0.5, 0.3])
def test_edge_hot_patch_colours_exactly_its_block_cyan(v):
    grid = (7, 9)
    edge = np.zeros(grid, np.float32)
    edge[3, 4] = v
    base = _noisy_screenshot()
    out = np.array(overlay(base, edge=edge)).astype(float)
    rows, cols = _block(SIZE, grid, 3, 4)

    rgb = (0, _q8(200 + 55 * v), 255)
    a8 = _q8(255 * v * 0.3)
    expected = np.array(base).astype(float)
    expected[rows, cols] = _blend(np.array(base)[rows, cols], rgb, a8)
    np.testing.assert_allclose(out, expected, atol=0.5)
    # The layer itself carries the exact product colour.
    layer = np.array(edge_layer(edge, SIZE))
    assert (layer[rows, cols] == (*rgb, a8)).all()
    mask = np.ones(SIZE[::-1], bool)
    mask[rows, cols] = False
    assert (layer[mask][:, 3] == 0).all()


@pytest.mark.parametrize("v", [1.0, 0.5, 0.25])
def test_focus_hot_cell_colours_exactly_its_block_red_to_yellow(v):
    grid = (4, 5)
    focus = np.zeros(grid)
    focus[1, 2] = v
    base = _noisy_screenshot(seed=1)
    out = np.array(overlay(base, focus=focus, alpha=0.8)).astype(float)
    rows, cols = _block(SIZE, grid, 1, 2)

    rgb = (255, _q8(180 * v), 0)
    a8 = _q8(255 * v * 0.8)
    expected = np.array(base).astype(float)
    expected[rows, cols] = _blend(np.array(base)[rows, cols], rgb, a8)
    np.testing.assert_allclose(out, expected, atol=0.5)
    assert (
        np.array(focus_layer(focus, SIZE))[rows, cols] == (255, _q8(180 * v), 0, _q8(255 * v * 0.35))
    ).all()


def test_focus_is_composited_over_edge():
    edge, focus = np.ones((2, 2)), np.ones((1, 1))
    base = _screenshot()
    out = np.array(overlay(base, edge=edge, focus=focus)).astype(float)
    under = _blend(np.array(base), (0, 255, 255), _q8(255 * 0.3))
    expected = _blend(under, (255, 180, 0), _q8(255 * 0.35))
    np.testing.assert_allclose(out, expected, atol=1.0)


def test_patch_blocks_tile_the_image_when_the_grid_does_not_divide_it():
    grid = (5, 7)
    values = np.arange(35, dtype=float).reshape(grid) / 34
    g = np.array(edge_layer(values, SIZE, alpha=1.0))[..., 1]
    # Each patch is one contiguous block of near-equal size, and every pixel belongs to one.
    for r in range(grid[0]):
        for c in range(grid[1]):
            rows, cols = _block(SIZE, grid, r, c)
            assert (g[rows, cols] == _q8(200 + 55 * values[r, c])).all()
            assert cols.stop - cols.start in (SIZE[0] // grid[1], SIZE[0] // grid[1] + 1)
            assert rows.stop - rows.start in (SIZE[1] // grid[0], SIZE[1] // grid[0] + 1)


def test_diff_sign_sets_the_hue_and_zero_is_transparent():
    diff = np.array([[0.8, -0.8, 0.0]])
    layer = np.array(diff_layer(diff, (30, 10)))
    pos, neg, zero = layer[5, 5], layer[5, 15], layer[5, 25]
    assert tuple(pos[:3]) == DIFF_POSITIVE and pos[0] > pos[2]
    assert tuple(neg[:3]) == DIFF_NEGATIVE and neg[2] > neg[0]
    assert pos[3] == neg[3] == _q8(255 * 0.8 * 0.4)
    assert zero[3] == 0


def test_overlay_draws_the_crosshair_on_top_of_the_maps():
    out = np.array(overlay(_screenshot(), edge=np.ones((3, 3)), focus=np.ones((2, 2)), click=(60.5, 20.5)))
    assert tuple(out[20, 60]) == CLICK_MARKER  # round(60.5) == 60, round(20.5) == 20
    assert out.shape == (77, 101, 3)


@pytest.mark.parametrize("make", [edge_layer, focus_layer, diff_layer])
def test_nan_map_is_refused_with_a_value_error(make):
    bad = np.zeros((3, 3))
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        make(bad, SIZE)
    with pytest.raises(InputError):
        make(bad, SIZE)


@pytest.mark.parametrize(
    ("values", "size"),
    [
        (np.zeros(5), SIZE),
        (np.zeros((0, 3)), SIZE),
        (np.full((2, 2), 1.5), SIZE),
        (np.zeros((2, 2)), (0, 10)),
    ],
)
def test_malformed_maps_and_sizes_are_refused(values, size):
    with pytest.raises(RenderError):
        edge_layer(values, size)


def test_layers_leave_callers_arrays_untouched():
    edge = np.linspace(0, 1, 12).reshape(3, 4).astype(np.float32)
    before = edge.copy()
    overlay(_screenshot(), edge=edge, focus=edge, click=(1, 1))
    np.testing.assert_array_equal(edge, before)


def test_to_png_round_trips_rgba():
    layer = edge_layer(np.eye(3), (30, 30))
    back = Image.open(io.BytesIO(to_png(layer)))
    assert back.mode == "RGBA"
    np.testing.assert_array_equal(np.array(back), np.array(layer))


def test_a_dashed_click_keeps_its_centre_and_breaks_its_arms_and_ring():
    base = Image.new("RGB", (200, 150), (255, 255, 255))
    solid = np.array(draw_click(base, 100, 75))
    dashed = np.array(draw_click(base, 100, 75, dashed=True))
    assert tuple(solid[75, 100]) == tuple(dashed[75, 100]) == CLICK_MARKER
    drawn = lambda a: (a != 255).any(axis=-1)  # noqa: E731
    # Every dashed pixel is a solid one's, and a good part of the solid ones is left out.
    assert not (drawn(dashed) & ~drawn(solid)).any()
    assert 0.3 < drawn(dashed).sum() / drawn(solid).sum() < 0.8
