"""Turn whatever an image callback returns into PNG bytes.

``get_instance_image_by_id(instance_id)`` may return

- PNG bytes (``bytes``, ``bytearray``, ``memoryview`` or a binary file object
  such as ``io.BytesIO``); bytes in another image format Pillow reads are
  converted;
- a PIL image;
- a numpy array (or a torch tensor): H x W (grey), H x W x 1, H x W x 3 (RGB)
  or H x W x 4 (RGBA); channels-first C x H x W with C in 1, 3, 4 is accepted
  too. ``uint8`` and ``bool`` are used as they are, floats in [0, 1] are scaled
  by 255; any other range is min-max scaled to 0..255;
- a Flask / Werkzeug response, which is passed through untouched;
- ``None``, which gives the neutral placeholder.

Every image is encoded with Pillow.
"""

from __future__ import annotations

import io
from typing import Any, Optional

import numpy as np
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

__all__ = [
    "PNG_SIGNATURE",
    "ImageConversionError",
    "encode_png",
    "placeholder_png",
    "to_png_bytes",
    "is_response",
]


class ImageConversionError(ValueError):
    """The callback returned something that cannot be shown as an image."""


def encode_png(pixels: np.ndarray) -> bytes:
    """Encode an 8-bit array as PNG.

    Parameters
    ----------
    pixels : numpy.ndarray
        ``uint8`` array of shape (H, W), (H, W, 3) or (H, W, 4).

    Returns
    -------
    bytes
        The PNG file.
    """
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))):
        raise ImageConversionError(
            "an image array must be H x W, H x W x 3 or H x W x 4")
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ImageConversionError("the image array is empty")
    # uint8 (H, W) -> "L", (H, W, 3) -> "RGB", (H, W, 4) -> "RGBA".
    return _save_png(Image.fromarray(pixels))


def _save_png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


_PLACEHOLDER: Optional[bytes] = None


def placeholder_png() -> bytes:
    """A neutral 64 x 64 grey placeholder with a thin border.

    Returns
    -------
    bytes
        The PNG file (built once, then cached).
    """
    global _PLACEHOLDER
    if _PLACEHOLDER is None:
        img = np.full((64, 64), 232, dtype=np.uint8)
        img[[0, -1], :] = 200
        img[:, [0, -1]] = 200
        # A faint diagonal cross says "no image" without any text.
        idx = np.arange(8, 56)
        img[idx, idx] = 200
        img[idx, 63 - idx] = 200
        _PLACEHOLDER = encode_png(img)
    return _PLACEHOLDER


def is_response(value: Any) -> bool:
    """Whether ``value`` is a Werkzeug (hence Flask) response object."""
    try:
        from werkzeug.wrappers import Response
    except ImportError:  # pragma: no cover - werkzeug comes with flask
        return False
    return isinstance(value, Response)


def _array_to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 3, 4):
        arr = np.transpose(arr, (1, 2, 0))  # channels first -> last
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageConversionError(
            "an image array must be H x W, H x W x 3 or H x W x 4, "
            "got shape %s" % (tuple(arr.shape),))
    if arr.size == 0:
        raise ImageConversionError("the image array is empty")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ImageConversionError("unsupported image array dtype %s" % arr.dtype)
    values = arr.astype(np.float64)
    finite = np.isfinite(values)
    values = np.where(finite, values, 0.0)
    low, high = float(values.min()), float(values.max())
    if np.issubdtype(arr.dtype, np.floating) and low >= 0.0 and high <= 1.0:
        scaled = values * 255.0
    elif np.issubdtype(arr.dtype, np.integer) and low >= 0 and high <= 255:
        scaled = values
    elif high > low:
        scaled = (values - low) * (255.0 / (high - low))
    else:
        scaled = np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _pil_to_png(image: Any) -> bytes:
    mode = getattr(image, "mode", "")
    if mode in ("F", "I", "I;16", "I;16B", "I;16L", "I;16N"):
        # 32-bit and float images: scale like arrays of the same dtype.
        return encode_png(_array_to_uint8(np.asarray(image)))
    if mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in mode else "RGB")
    return _save_png(image)


def _bytes_to_png(data: bytes) -> bytes:
    if data.startswith(PNG_SIGNATURE):
        return data
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return _pil_to_png(image)
    except Exception:
        raise ImageConversionError(
            "the callback returned bytes that are not an image") from None


def to_png_bytes(value: Any) -> bytes:
    """Convert a callback result (not a response object) to PNG bytes.

    Parameters
    ----------
    value : Any
        See the module documentation for what is accepted.

    Returns
    -------
    bytes
        A PNG file.

    Raises
    ------
    ImageConversionError
        The value cannot be turned into an image.
    """
    if value is None:
        return placeholder_png()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _bytes_to_png(bytes(value))
    if hasattr(value, "read") and callable(value.read):
        data = value.read()
        if not isinstance(data, (bytes, bytearray)):
            raise ImageConversionError("the callback returned a text stream, not an image")
        return _bytes_to_png(bytes(data))
    # torch tensors without importing torch.
    if hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return encode_png(_array_to_uint8(value))
    if isinstance(value, Image.Image):
        return _pil_to_png(value)
    raise ImageConversionError(
        "the callback returned a %s; expected PNG bytes, a PIL image, a numpy "
        "array or a Flask response" % type(value).__name__)
