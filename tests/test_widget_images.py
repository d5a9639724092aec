"""Unit tests of the callback result -> PNG conversion of the widget server."""

import io

import numpy as np
import pytest
from PIL import Image

from backwardcompatibilityml.widgets.compatibility_analysis.images import (
    PNG_SIGNATURE,
    ImageConversionError,
    encode_png,
    is_response,
    placeholder_png,
    to_png_bytes,
)


def decode(png: bytes) -> Image.Image:
    assert png.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def test_encode_png_grey_rgb_rgba_roundtrip():
    rng = np.random.default_rng(0)
    for shape, mode in (((5, 7), "L"), ((5, 7, 3), "RGB"), ((5, 7, 4), "RGBA")):
        pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
        image = decode(encode_png(pixels))
        assert image.mode == mode
        assert image.size == (7, 5)
        assert np.array_equal(np.asarray(image), pixels)


def test_encode_png_is_pillows_png():
    """The encoder is Pillow's (no hand-written PNG writer): same bytes."""
    rng = np.random.default_rng(1)
    for shape in ((9, 4), (6, 5, 3), (3, 8, 4)):
        pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        assert encode_png(pixels) == buffer.getvalue()


def test_encode_png_rejects_bad_shapes():
    with pytest.raises(ImageConversionError):
        encode_png(np.zeros((2, 2, 2), dtype=np.uint8))
    with pytest.raises(ImageConversionError):
        encode_png(np.zeros((0, 3), dtype=np.uint8))


def test_placeholder_is_a_cached_neutral_png():
    first = placeholder_png()
    assert first is placeholder_png()
    image = decode(first)
    assert image.size == (64, 64)
    assert len(set(np.asarray(image).ravel().tolist())) <= 2  # greys only


def test_none_gives_the_placeholder():
    assert to_png_bytes(None) == placeholder_png()


def test_png_bytes_pass_through_unchanged():
    png = encode_png(np.full((3, 3), 9, dtype=np.uint8))
    assert to_png_bytes(png) == png
    assert to_png_bytes(bytearray(png)) == png
    assert to_png_bytes(memoryview(png)) == png
    assert to_png_bytes(io.BytesIO(png)) == png


def test_other_image_formats_are_converted():
    buf = io.BytesIO()
    Image.new("RGB", (4, 3), (10, 20, 30)).save(buf, format="JPEG")
    image = decode(to_png_bytes(buf.getvalue()))
    assert image.size == (4, 3)


def test_bytes_that_are_no_image_are_refused():
    with pytest.raises(ImageConversionError):
        to_png_bytes(b"definitely not an image")
    with pytest.raises(ImageConversionError):
        to_png_bytes(io.StringIO("text"))


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "1", "CMYK", "I", "F", "LA"])
def test_pil_images_of_every_common_mode(mode):
    image = Image.new(mode, (6, 4))
    decoded = decode(to_png_bytes(image))
    assert decoded.size == (6, 4)


def test_float_arrays_in_unit_range_are_scaled_by_255():
    pixels = np.array([[0.0, 0.5], [1.0, 0.25]])
    decoded = np.asarray(decode(to_png_bytes(pixels)))
    assert decoded.tolist() == [[0, 128], [255, 64]]


def test_float_arrays_outside_unit_range_are_min_max_scaled():
    pixels = np.array([[0.0, 8.0], [16.0, 4.0]])  # sklearn digits values
    decoded = np.asarray(decode(to_png_bytes(pixels)))
    assert decoded.tolist() == [[0, 128], [255, 64]]


def test_nan_and_constant_arrays_do_not_fail():
    decode(to_png_bytes(np.array([[np.nan, 1.0], [0.0, np.inf]])))
    assert np.asarray(decode(to_png_bytes(np.full((2, 2), 7.0)))).max() == 0


def test_uint8_rgb_bool_int_and_channel_variants():
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    assert np.array_equal(np.asarray(decode(to_png_bytes(rgb))), rgb)
    assert np.asarray(decode(to_png_bytes(np.eye(3, dtype=bool)))).max() == 255
    assert np.asarray(decode(to_png_bytes(np.arange(6, dtype=np.int64).reshape(2, 3)))).tolist() \
        == [[0, 1, 2], [3, 4, 5]]
    assert decode(to_png_bytes(np.zeros((4, 5, 1), dtype=np.uint8))).size == (5, 4)
    channels_first = np.zeros((3, 4, 5), dtype=np.uint8)
    assert decode(to_png_bytes(channels_first)).size == (5, 4)


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    decoded = decode(to_png_bytes(torch.zeros(1, 8, 8)))
    assert decoded.size == (8, 8)


def test_unsupported_values_raise_a_short_message():
    with pytest.raises(ImageConversionError, match="str"):
        to_png_bytes("a string")
    with pytest.raises(ImageConversionError):
        to_png_bytes(np.zeros((2, 2, 2, 2)))
    with pytest.raises(ImageConversionError):
        to_png_bytes(np.array([["a"]]))


def test_is_response():
    from flask import Response

    assert is_response(Response(b"x"))
    assert not is_response(b"x")
