"""The gallery's thumbnails (`lav.eval.report.thumbnail_png`): drawn at their own size from a large
screenshot, with the focus map, both clicks and the target box where the screenshot has them."""

from __future__ import annotations

import io
import math
from types import SimpleNamespace

import numpy as np
from PIL import Image

from lav.eval.report import BASE_CLICK, BOX_COLOUR, THUMB_WIDTH, thumbnail_png
from lav.render import CLICK_MARKER
from lav.render.overlay import FOCUS_ALPHA

SIZE = (1280, 720)  # a real screenshot's shape, scaled by 240 / 1280 = 0.1875
GREY = (90, 120, 150)


def _result(image, click, focus, base=None):
    return SimpleNamespace(
        image=image,
        click=None if click is None else SimpleNamespace(x=click[0], y=click[1]),
        maps={"focus": focus},
        focus=focus,
        base=base,
    )


def _thumb(res, rec) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(thumbnail_png(res, rec))).convert("RGB")).astype(int)


def _focus():
    focus = np.zeros((9, 16))
    focus[4, 10] = 1.0  # one hot cell: thumbnail pixels x 150-164, y 60-74 (15 px a cell)
    return focus


def test_a_thumbnail_of_a_large_screenshot_holds_its_focus_cell_click_and_box_where_they_are():
    scale = THUMB_WIDTH / SIZE[0]
    res = _result(Image.new("RGB", SIZE, GREY), (1000.0, 300.0), _focus())
    thumb = _thumb(res, {"bbox": [100, 500, 400, 650]})
    assert thumb.shape == (round(SIZE[1] * scale), THUMB_WIDTH, 3)
    # The crosshair's centre on the scaled click pixel.
    assert tuple(thumb[round(300 * scale), round(1000 * scale)]) == CLICK_MARKER
    # The hot cell, away from the crosshair, in the focus colour at full opacity over the grey.
    a = round(255 * FOCUS_ALPHA) / 255
    expected = [round(c * a + g * (1 - a)) for c, g in zip((255, 180, 0), GREY, strict=True)]
    np.testing.assert_allclose(thumb[62:73, 151:156].reshape(-1, 3), [expected] * 55, atol=1)
    # Cold cells leave the screenshot's grey as it was.
    assert (thumb[5:40, 5:60] == GREY).all()
    # The box's outline at the scaled corners.
    assert tuple(thumb[math.floor(500 * scale), math.floor(250 * scale)]) == BOX_COLOUR


def test_with_a_base_model_the_sheet_has_two_panels_each_with_its_own_click_and_the_others_circle():
    scale = THUMB_WIDTH / SIZE[0]
    base = _result(Image.new("RGB", SIZE, GREY), (200.0, 600.0), np.zeros((9, 16)))
    res = _result(Image.new("RGB", SIZE, GREY), (1000.0, 300.0), _focus(), base=base)
    thumb = _thumb(res, {})
    assert thumb.shape[1] == 2 * THUMB_WIDTH + 4
    left, right = thumb[:, :THUMB_WIDTH], thumb[:, THUMB_WIDTH + 4 :]
    assert tuple(left[round(300 * scale), round(1000 * scale)]) == CLICK_MARKER
    assert tuple(right[round(600 * scale), round(200 * scale)]) == CLICK_MARKER
    # The base click's circle (radius 5) on the adapter's panel: its colour on the ring.
    ring = left[
        round(600 * scale) - 6 : round(600 * scale) + 7, round(200 * scale) - 6 : round(200 * scale) + 7
    ]
    assert (ring == BASE_CLICK).all(axis=-1).any()
    # The base panel has no hot cell: only the adapter's focus is drawn on the left.
    assert not (right[62:73, 151:156] == left[62:73, 151:156]).all()


def test_a_transparent_screenshot_is_shown_on_white_and_a_missing_click_draws_nothing():
    image = Image.new("RGBA", SIZE, (0, 0, 0, 0))
    thumb = _thumb(_result(image, None, np.zeros((9, 16))), {})
    assert (thumb == 255).all()
