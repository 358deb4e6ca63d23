"""The model-free pieces of the faithfulness and zoom checks, each against a computation by hand."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from lav.errors import InputError
from lav.faithful import CheckOptions
from lav.faithful import cells as C
from lav.faithful.summary import faithfulness_block, mean_ci, zoom_block


def test_auc_of_hand_made_curves():
    # Trapezoids worked out by hand: a straight fall from 1 to 0 has area 1/2, a step at the first
    # point 1/2 * 0.25 (1 -> 0 over the first quarter), a flat 0.4 line 0.4.
    assert C.auc([0, 1], [1, 0]) == pytest.approx(0.5)
    assert C.auc([0, 0.25, 0.5, 0.75, 1], [1, 0, 0, 0, 0]) == pytest.approx(0.125)
    assert C.auc([0, 0.5, 1], [0.4, 0.4, 0.4]) == pytest.approx(0.4)
    # Uneven steps: (0.1 * (1 + 0.8) + 0.9 * (0.8 + 0.2)) / 2 = 0.54.
    assert C.auc([0, 0.1, 1], [1, 0.8, 0.2]) == pytest.approx(0.54)
    with pytest.raises(ValueError):
        C.auc([0, 1, 0.5], [1, 1, 1])


def test_cell_labels_follow_each_pixel_centre_through_the_resize():
    # 300 x 200 original, resized to 288 x 192 (9 x 6 cells of 32 px): every pixel's centre mapped by
    # exact fractions gives its cell.
    size, resized, cells = (300, 200), (288, 192), (6, 9)
    labels = C.cell_labels(size, resized, cells)
    assert labels.shape == (200, 300)
    for y in range(0, 200, 7):
        for x in range(0, 300, 11):
            xr = (Fraction(2 * x + 1, 2)) * Fraction(288, 300)
            yr = (Fraction(2 * y + 1, 2)) * Fraction(192, 200)
            want = int(yr // 32) * 9 + int(xr // 32)
            assert labels[y, x] == want, (x, y)
    # Every cell holds pixels, and they form one rectangle.
    for cell in range(54):
        ys, xs = np.nonzero(labels == cell)
        assert len(ys) == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)


def test_composite_changes_exactly_the_chosen_cells_pixels():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    fill = C.fill_image(image, "mean", 32)
    labels = C.cell_labels(image.size, (96, 64), (2, 3))  # no resize: cells are 32 px squares
    out = np.asarray(C.composite(fill, image, labels, [1, 5]))
    src = np.asarray(image)
    mean = np.rint(src.reshape(-1, 3).mean(axis=0))
    changed = np.zeros((64, 96), bool)
    changed[0:32, 32:64] = True  # cell 1: row 0, column 1
    changed[32:64, 64:96] = True  # cell 5: row 1, column 2
    assert np.array_equal(out[~changed], src[~changed])
    assert np.all(out[changed] == mean)


def test_orders_steps_and_merged_values():
    values = np.array([[0.1, 0.9], [0.5, 0.9]])
    assert C.map_order(values).tolist() == [1, 3, 2, 0]  # ties keep raster order
    assert C.step_counts(48, 10) == [0, 5, 10, 14, 19, 24, 29, 34, 38, 43, 48]
    assert sorted(C.random_order(10, 1).tolist()) == list(range(10))
    patch = np.arange(16, dtype=float).reshape(4, 4)
    # Each merged cell is the sum of its 2 x 2 patches.
    assert C.merged_values(patch, "patch", 2).tolist() == [[10.0, 18.0], [42.0, 50.0]]


def test_crop_box_is_centred_and_kept_inside():
    assert C.crop_box((128, 96), (256, 192), 2) == (64, 48, 192, 144)
    assert C.crop_box((10, 180), (256, 192), 2) == (0, 96, 128, 192)  # moved inside
    # 85 x 64 (round(256/3), 192/3); x0 = round(100 - 42.5) = 58 (half to even), y0 = 50 - 32 = 18.
    assert C.crop_box((100, 50), (256, 192), 3) == (58, 18, 143, 82)


def test_check_options_refuse_bad_values():
    with pytest.raises(InputError, match="removal"):
        CheckOptions(faithfulness=True, removal="noise")
    with pytest.raises(InputError, match="steps"):
        CheckOptions(faithfulness=True, steps=1)
    with pytest.raises(InputError, match="zoom_factor"):
        CheckOptions(zoom=True, zoom_factor=1.0)


def test_mean_ci_and_blocks_from_hand_made_checks():
    ci = mean_ci([0.2, 0.4, 0.6])
    assert ci["mean"] == pytest.approx(0.4) and ci["n"] == 3
    assert 0.2 <= ci["ci95"][0] <= 0.4 <= ci["ci95"][1] <= 0.6

    def check(d, i):
        a = {"deletion_auc": d, "insertion_auc": i, "deletion_hit_auc": d, "insertion_hit_auc": i}
        r = {"deletion_auc": 0.4, "insertion_auc": 0.3, "deletion_hit_auc": 0.5, "insertion_hit_auc": 0.5}
        return {
            "removal": "mean",
            "steps": 10,
            "auc": {"focus": a, "edge": {**a, "deletion_auc": 0.5}, "random": r},
        }

    block = faithfulness_block([check(0.1, 0.7), check(0.3, 0.5), {"skipped": "no click"}, None])
    assert block["n"] == 2 and block["skipped"] == 1
    assert block["maps"]["focus"]["deletion_auc"]["mean"] == pytest.approx(0.2)
    assert [r["map"] for r in block["ranking"]] == ["focus", "edge"]
    assert block["ranking"][0]["beats_random"] and not block["ranking"][1]["beats_random"]

    zooms = [
        ({"factor": 2.0, "maps": {"focus": {"hit": True}}}, False),
        ({"factor": 2.0, "maps": {"focus": {"hit": False}}}, True),
    ]
    z = zoom_block(zooms)
    assert z["maps"]["focus"]["accuracy"] == 0.5 and z["without"]["accuracy"] == 0.5 and z["n"] == 2
