"""`Result.load` checks a saved folder on load, not on render: types, array headers, image size.

On the old code each damaged folder below loaded, then failed with a raw error inside `overlay`,
`report_html` or `save`; or allocated what an array header claimed (`MemoryError`); or decoded a
400 Mpx image.png (`DecompressionBombError`) or a 144 Mpx one without any limit.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from lav import LavError, Result
from tests.unit.test_result_record import _result


@pytest.fixture
def saved(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    _result().write_record(out)
    return out


def _edit(folder, change):
    data = json.loads((folder / "result.json").read_text())
    change(data)
    (folder / "result.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    "change, named",
    [
        (lambda d: d.update(model=5), "'model' must be text"),
        (lambda d: d.update(grid={"t": 1, "h": "6", "w": 8, "merge": 2, "patch": 8}), "'grid'"),
        (lambda d: d.update(timings={"generate": "slow"}), "'timings'"),
        (lambda d: d.update(resized_size=[64]), "'resized_size'"),
        (lambda d: d.update(answer_tokens="(12"), "'answer_tokens'"),
        (lambda d: d["click"].update(x="left"), "'click'"),
        (lambda d: d["maps"]["edge"].update(grid="pixels"), "map 'edge' needs a grid"),
        (lambda d: d["maps"]["edge"].update(layers=[1.5]), "map 'edge' needs layers"),
        (lambda d: d["maps"]["focus"]["info"].pop("tokens"), "info.tokens"),
        (lambda d: d["maps"]["edge"].update(arrays=["nope"]), "no array 'nope'"),
        (lambda d: d["maps"]["edge"].update(shape=[3, 3]), "map 'edge' is float32"),
        (lambda d: d.update(grid={"t": 1, "h": 4, "w": 8, "merge": 2, "patch": 8}), "map 'edge' is"),
        (lambda d: d["base"].update(instruction=None), "(base run): 'instruction'"),
        (lambda d: d["base"].update(base=d["base"].copy()), "not nested"),
        (lambda d: d.update(image_size=[10, 10]), "result.json says"),
    ],
)
def test_a_record_of_wrong_types_or_shapes_is_refused_on_load(saved, change, named):
    _edit(saved, change)
    with pytest.raises(LavError) as info:
        Result.load(saved)
    assert named in str(info.value)


def test_every_record_that_loads_renders_and_saves(saved, tmp_path):
    res = Result.load(saved)
    res.overlay()
    res.report_html()
    res.save(tmp_path / "again")
    assert Result.load(tmp_path / "again") == res


def _npy_header(shape, dtype="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_an_array_header_claiming_149_gib_is_refused_before_allocating(saved):
    arrays = dict(np.load(saved / "maps.npz"))
    with zipfile.ZipFile(saved / "maps.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        for k, v in arrays.items():
            if k == "edge_raw":
                continue
            buf = io.BytesIO()
            np.save(buf, v)
            zf.writestr(k + ".npy", buf.getvalue())
        # 200000 x 200000 float32 = 149 GiB, with a few bytes of data behind the header.
        zf.writestr("edge_raw.npy", _npy_header((200_000, 200_000)) + b"\0" * 64)
    with pytest.raises(LavError, match=r"claims 160,000,000,000 bytes"):
        Result.load(saved)


def test_an_array_of_objects_is_refused(saved):
    arrays = dict(np.load(saved / "maps.npz"))
    arrays["edge_raw"] = np.array([[1, 2]], dtype="U3")
    np.savez_compressed(saved / "maps.npz", **arrays)
    with pytest.raises(LavError, match="not numbers"):
        Result.load(saved)


def _big_image(folder, side):
    # A 1-bit PNG: tiny on disk and in memory here; as RGB it is 3 bytes a pixel.
    Image.new("1", (side, side)).save(folder / "image.png")
    _edit(folder, lambda d: d.update(image_size=[side, side]))


@pytest.mark.parametrize(
    "side", [12_000, 20_000]
)  # 144 Mpx (opened without a limit before), 400 Mpx (a bomb)
def test_image_png_over_the_pixel_limit_is_refused_from_its_header(saved, side):
    _big_image(saved, side)
    with pytest.raises(LavError, match=r"over the limit of 64,000,000"):
        Result.load(saved)


def test_max_pixels_is_the_callers_to_set(saved):
    with pytest.raises(LavError, match="over the limit of 1,000"):
        Result.load(saved, max_pixels=1000)
    assert Result.load(saved, max_pixels=51 * 37).image.size == (51, 37)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_fifo_in_place_of_a_record_file_is_refused_without_blocking(saved):
    # is_file() is False for a FIFO, so the check before opening names it missing; the open itself
    # (O_NONBLOCK, then fstat) would refuse it too, were it swapped in after that check.
    from lav.safeopen import FileRefused, read_regular

    os.remove(saved / "result.json")
    os.mkfifo(saved / "result.json")
    with pytest.raises(LavError):
        Result.load(saved)
    with pytest.raises(FileRefused, match="named pipe"):
        read_regular(saved / "result.json")
