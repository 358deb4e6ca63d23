"""`load_image`: every bad file fails with one clear sentence; every odd mode becomes the right RGB."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from lav.errors import ImageError, InputError
from lav.inputs import DEFAULT_MAX_PIXELS, describe, load_image

WHITE = (255, 255, 255)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` with (almost) no pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def _pattern(size=(64, 48)) -> Image.Image:
    """Non-uniform RGB content, so a decoder that stops early leaves visible gaps."""
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _message(excinfo) -> str:
    return str(excinfo.value)


# --- files that are not (whole) images -------------------------------------------------------------


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ImageError, match="does not exist; check the path") as e:
        load_image(tmp_path / "nope.png")
    assert "nope.png" in _message(e)


def test_directory_is_refused(tmp_path):
    with pytest.raises(ImageError, match="is a directory"):
        load_image(tmp_path)


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty \(0 bytes\)"):
        load_image(path)


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("click the blue button\n")
    with pytest.raises(ImageError, match="not an image Pillow can read; pass a PNG, JPEG"):
        load_image(path)


def test_url_is_refused_with_advice(tmp_path):
    with pytest.raises(ImageError, match="download the image"):
        load_image("https://example.com/shot.png")


def test_non_path_source_is_refused():
    with pytest.raises(ImageError, match="expected an image path or a PIL image, got ndarray"):
        load_image(np.zeros((2, 2, 3), np.uint8))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_raises_instead_of_loading_gray(tmp_path, fmt):
    path = tmp_path / f"shot.{fmt.lower()}"
    _pattern().save(path, fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(path)


def test_truncated_file_raises_even_when_pillow_is_told_to_accept_it(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    path = tmp_path / "shot.png"
    _pattern().save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is back


def test_zero_size_image_is_refused():
    with pytest.raises(ImageError, match=r"zero size \(0x0\)"):
        load_image(Image.new("RGB", (0, 0)))


def test_zero_size_png_file_is_refused(tmp_path):
    path = tmp_path / "zero.png"
    path.write_bytes(_png_header_only(0, 0))
    with pytest.raises(ImageError):
        load_image(path)


# --- size limit ------------------------------------------------------------------------------------


def test_decompression_bomb_is_refused_from_the_header_without_decoding(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(100_000, 100_000))  # 10^10 pixels, 30 GB as RGB

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("pixels were decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageError) as e:
        load_image(path)
    message = _message(e)
    assert "100000x100000" in message
    assert f"max_pixels={DEFAULT_MAX_PIXELS:,}" in message
    assert "max_pixels=..." in message and "--max-pixels" in message


def test_max_pixels_is_the_override(tmp_path):
    path = tmp_path / "shot.png"
    _pattern((100, 50)).save(path)
    with pytest.raises(ImageError, match="5,000 pixels, more than max_pixels=4,999"):
        load_image(path, max_pixels=4_999)
    assert load_image(path, max_pixels=5_000).size == (100, 50)


def test_max_pixels_also_limits_pil_images():
    with pytest.raises(ImageError, match="more than max_pixels=10"):
        load_image(Image.new("RGB", (4, 3)), max_pixels=10)


def test_max_pixels_above_pillows_bomb_limit_is_honoured(tmp_path, monkeypatch):
    # The header exceeds Pillow's own limit (~179 M pixels) but not ours, so decoding must start.
    path = tmp_path / "tall.png"
    path.write_bytes(_png_header_only(10_000, 20_000))  # 200 M pixels, a normal shape

    def decoding_starts(self, *args, **kwargs):
        raise OSError("decoding started")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decoding_starts)
    pillow_limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageError, match=r"truncated or corrupt \(decoding started\)"):
        load_image(path, max_pixels=200_000_000)
    assert pillow_limit == Image.MAX_IMAGE_PIXELS  # Pillow's own check is back


def test_non_positive_max_pixels_is_an_input_error():
    with pytest.raises(InputError, match="max_pixels must be positive"):
        load_image(Image.new("RGB", (1, 1)), max_pixels=0)


# --- modes -----------------------------------------------------------------------------------------


def _pixels(image: Image.Image) -> list:
    assert image.mode == "RGB"
    return [tuple(p) for p in np.asarray(image).reshape(-1, 3).tolist()]


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparency_is_composited_on_white(mode):
    image = Image.new("RGBA", (3, 1))
    image.putdata([(0, 0, 0, 0), (0, 0, 0, 255), (0, 0, 0, 128)])
    out = _pixels(load_image(image.convert(mode)))
    assert out[0] == WHITE  # fully transparent black is white, not black
    assert out[1] == (0, 0, 0)
    assert out[2] == (127, 127, 127)


def test_rgba_file_is_composited_on_white(tmp_path):
    path = tmp_path / "icon.png"
    Image.new("RGBA", (2, 2), (255, 0, 0, 0)).save(path)
    assert set(_pixels(load_image(path))) == {WHITE}


def test_palette_with_transparent_index_becomes_white(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255])
    image.putpixel((1, 0), 1)
    path = tmp_path / "palette.png"
    image.save(path, transparency=1)
    assert _pixels(load_image(path)) == [(255, 0, 0), WHITE]


def test_palette_with_alpha_in_the_palette_becomes_white():
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 255, 0, 0, 0, 0], rawmode="RGBA")
    image.putpixel((1, 0), 1)
    assert "transparency" not in image.info
    assert _pixels(load_image(image)) == [(255, 0, 0), WHITE]


def test_palette_without_transparency_keeps_its_colours():
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255])
    image.putpixel((1, 0), 1)
    assert _pixels(load_image(image)) == [(255, 0, 0), (0, 0, 255)]


def test_cmyk_is_converted(tmp_path):
    red = Image.new("CMYK", (8, 8), (0, 255, 255, 0))
    assert set(_pixels(load_image(red))) == {(255, 0, 0)}
    path = tmp_path / "print.jpg"
    red.save(path, quality=100)
    r, g, b = np.asarray(load_image(path)).reshape(-1, 3).mean(0)
    assert r > 240 and g < 15 and b < 15


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path, mode):
    values = np.array([[0, 257, 32768, 65535]], dtype=">u2" if mode == "I;16B" else "<u2")
    image = Image.frombytes(mode, (4, 1), values.tobytes())  # Pillow's convert() to I;16B clips at 255
    expected = [(0, 0, 0), (1, 1, 1), (128, 128, 128), WHITE]
    assert _pixels(load_image(image)) == expected
    if mode == "I;16":
        path = tmp_path / "depth.png"
        image.save(path)
        assert Image.open(path).mode == "I;16"
        assert _pixels(load_image(path)) == expected


def test_thirty_two_bit_integer_with_sixteen_bit_values_is_scaled_by_65535():
    image = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.int32))
    assert image.mode == "I"
    assert _pixels(load_image(image)) == [(0, 0, 0), (128, 128, 128), WHITE]


def test_thirty_two_bit_integer_with_eight_bit_values_keeps_them():
    image = Image.fromarray(np.array([[0, 100, 255]], dtype=np.int32))
    assert _pixels(load_image(image)) == [(0, 0, 0), (100, 100, 100), WHITE]


def test_thirty_two_bit_integer_out_of_range_is_stretched():
    image = Image.fromarray(np.array([[-1000, 0, 1000]], dtype=np.int32))
    assert _pixels(load_image(image)) == [(0, 0, 0), (128, 128, 128), WHITE]


def test_float_in_unit_range_is_scaled_by_255():
    image = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert image.mode == "F"
    assert _pixels(load_image(image)) == [(0, 0, 0), (128, 128, 128), WHITE]


def test_float_beyond_unit_range_keeps_eight_bit_values_and_maps_nan_to_black():
    image = Image.fromarray(np.array([[0.0, 100.0, 255.0, np.nan]], dtype=np.float32))
    assert _pixels(load_image(image)) == [(0, 0, 0), (100, 100, 100), WHITE, (0, 0, 0)]


def test_one_bit_image_is_black_and_white(tmp_path):
    image = Image.new("1", (2, 1), 0)
    image.putpixel((1, 0), 1)
    path = tmp_path / "mask.png"
    image.save(path)
    assert _pixels(load_image(path)) == [(0, 0, 0), WHITE]


def test_grayscale_png_is_rgb(tmp_path):
    path = tmp_path / "gray.png"
    Image.new("L", (2, 2), 77).save(path)
    image = load_image(path)
    assert describe(image) == "2x2 RGB"
    assert set(_pixels(image)) == {(77, 77, 77)}


# --- orientation -----------------------------------------------------------------------------------


def _upright_with_marker() -> Image.Image:
    """80x40, white, with a red block in the top-left corner: any rotation or flip moves it."""
    image = Image.new("RGB", (80, 40), WHITE)
    image.paste((255, 0, 0), (0, 0, 20, 10))
    return image


def _assert_upright(image: Image.Image):
    assert image.size == (80, 40)
    pixels = np.asarray(image).astype(int)
    corner = pixels[2:8, 2:18].mean(axis=(0, 1))
    assert corner[0] > 200 and corner[1] < 60 and corner[2] < 60, corner
    for other in (pixels[-8:-2, -18:-2], pixels[-8:-2, 2:18], pixels[2:8, -18:-2]):
        assert other.mean() > 230


# EXIF orientation 6: shown after turning 90 degrees clockwise, so the file holds the picture turned
# 90 degrees counter-clockwise; orientation 8 the other way round.
@pytest.mark.parametrize(
    ("orientation", "stored"), [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)]
)
def test_exif_rotated_jpeg_is_returned_upright(tmp_path, orientation, stored):
    upright = _upright_with_marker()
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "phone.jpg"
    upright.transpose(stored).save(path, quality=95, exif=exif.tobytes())
    assert Image.open(path).size == (40, 80)  # as stored
    _assert_upright(load_image(path))


# --- the caller's image ----------------------------------------------------------------------------


def test_pil_image_is_not_mutated():
    image = Image.new("RGBA", (4, 2), (10, 20, 30, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    image.info["exif"] = exif.tobytes()
    before = (image.mode, image.size, image.tobytes(), dict(image.info))
    out = load_image(image)
    assert out is not image
    assert out.size == (2, 4) and out.mode == "RGB"
    assert (image.mode, image.size, image.tobytes(), dict(image.info)) == before
    assert image.getexif()[0x0112] == 6


def test_rgb_pil_image_is_returned_as_a_copy():
    image = _pattern((5, 4))
    before = image.tobytes()
    out = load_image(image)
    assert out is not image
    assert out.tobytes() == before
    out.paste((1, 2, 3), (0, 0, 5, 4))
    assert image.tobytes() == before


def test_loaded_file_is_independent_of_the_file(tmp_path):
    path = tmp_path / "shot.png"
    _pattern().save(path)
    image = load_image(str(path))
    path.unlink()
    assert image.getpixel((0, 0)) == _pattern().getpixel((0, 0))


def test_describe():
    assert describe(Image.new("RGB", (1920, 1080))) == "1920x1080 RGB"
    assert describe(Image.new("LA", (3, 2))) == "3x2 LA"


# --- shapes the Qwen-VL processors refuse, named before any model work -----------------------------


@pytest.mark.parametrize(("size", "ratio"), [((20000, 20), "1000:1"), ((20, 4100), "205:1")])
def test_aspect_ratio_beyond_the_processors_limit_is_refused_with_the_number(tmp_path, size, ratio):
    path = tmp_path / "thin.png"
    Image.new("RGB", size, WHITE).save(path)
    with pytest.raises(ImageError, match=f"{size[0]}x{size[1]}, an aspect ratio of {ratio}") as e:
        load_image(path)
    assert "200:1" in _message(e)
    with pytest.raises(ImageError, match="aspect ratio"):
        load_image(Image.new("RGB", size, WHITE))


def test_aspect_ratio_at_the_limit_is_accepted():
    assert load_image(Image.new("RGB", (4000, 20), WHITE)).size == (4000, 20)


@pytest.mark.parametrize("value", [True, 1.5, "100", None])
def test_max_pixels_of_the_wrong_type_is_an_input_error(value):
    with pytest.raises(InputError, match="max_pixels must be positive"):
        load_image(Image.new("RGB", (4, 4)), max_pixels=value)


def test_dangling_symlink_is_named(tmp_path):
    (tmp_path / "link.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(ImageError, match="symbolic link to .*gone.png, which does not exist"):
        load_image(tmp_path / "link.png")
