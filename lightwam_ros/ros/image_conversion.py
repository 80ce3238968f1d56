"""Camera messages to and from the H x W x 3 uint8 RGB arrays the policy consumes.

``sensor_msgs/Image`` is converted with ``cv_bridge`` when it is installed and with NumPy
otherwise; both give identical arrays.  The NumPy path reads the message buffer without copying
(``np.frombuffer`` honouring the row stride ``step``) and writes each pixel once into a fresh
contiguous array, so the result never aliases the message.  Every message is validated first,
whichever path converts it, so both reject the same malformed input.

Only 8-bit colour and grey encodings are accepted: depth and 16-bit images are not camera frames
for this model, and silently rescaling them would hide a miswired topic.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import Any

import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from lightwam_ros.ros.log_text import quoted
from lightwam_ros.ros.stamps import StampLike, to_stamp

CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
"""Accepted ``Image`` encodings and their bytes per pixel."""

OUTPUT_ENCODINGS = ("rgb8", "bgr8")
_TO_RGB_CHANNELS = {
    "rgb8": (0, 1, 2),
    "bgr8": (2, 1, 0),
    "rgba8": (0, 1, 2),
    "bgra8": (2, 1, 0),
    "mono8": (0, 0, 0),
}
_BACKENDS = ("auto", "numpy", "cv_bridge")


class ImageConversionError(ValueError):
    """An image message cannot be turned into an RGB array; the message says why."""


def validate_image(msg: Image) -> int:
    """Check encoding, sizes, stride and buffer length; returns bytes per pixel."""
    encoding = msg.encoding
    if encoding not in CHANNELS:
        hint = (
            " (16-bit, float and depth images are not camera frames for the policy: publish "
            "an 8-bit colour or mono8 stream)"
            if _is_wide(encoding)
            else ""
        )
        raise ImageConversionError(
            f"unsupported image encoding {quoted(encoding)}; supported: {sorted(CHANNELS)}{hint}"
        )
    channels = CHANNELS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ImageConversionError(f"empty {encoding} image: {width}x{height} (width x height)")
    if step < width * channels:
        raise ImageConversionError(
            f"{encoding} image {width}x{height}: step {step} is smaller than width*channels "
            f"= {width * channels} bytes"
        )
    expected = step * height
    if len(msg.data) != expected:
        problem = "truncated" if len(msg.data) < expected else "longer than its header says"
        raise ImageConversionError(
            f"{encoding} image {width}x{height} with step {step}: data is {problem}, "
            f"{len(msg.data)} bytes instead of step*height = {expected}"
        )
    return channels


def image_to_rgb(msg: Image, backend: str = "auto") -> np.ndarray:
    """A fresh contiguous (H, W, 3) uint8 RGB array from an ``Image`` message.

    ``backend``: ``"auto"`` (cv_bridge when importable, else NumPy), ``"numpy"`` or
    ``"cv_bridge"``.  Rows padded beyond width*channels (``step``) are handled by both.
    """
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    channels = validate_image(msg)
    bridge = _cv_bridge() if backend != "numpy" else None
    if backend == "cv_bridge" and bridge is None:
        raise ImageConversionError("backend 'cv_bridge' requested but cv_bridge is not importable")
    # cv_bridge assumes the row stride is a whole number of pixels; other strides go to NumPy.
    if bridge is not None and msg.step % channels == 0:
        return np.array(
            bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8"), dtype=np.uint8, order="C", copy=True
        )
    return _numpy_image_to_rgb(msg, channels)


def _numpy_image_to_rgb(msg: Image, channels: int) -> np.ndarray:
    height, width = int(msg.height), int(msg.width)
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(height, int(msg.step))
    pixels = rows[:, : width * channels].reshape(height, width, channels)  # a view, no copy
    return _copy_channels(pixels, _TO_RGB_CHANNELS[msg.encoding])


def _copy_channels(pixels: np.ndarray, order: tuple[int, int, int]) -> np.ndarray:
    """A fresh contiguous (H, W, 3) array whose channel k is ``pixels[:, :, order[k]]``."""
    out = np.empty(pixels.shape[:2] + (3,), dtype=np.uint8)
    if order == (0, 1, 2) and pixels.shape[2] == 3:
        out[...] = pixels
    else:
        # Plane by plane: NumPy copies long strided runs ~10x faster than 3-byte pixels.
        for out_channel, in_channel in enumerate(order):
            out[:, :, out_channel] = pixels[:, :, in_channel]
    return out


@functools.lru_cache(maxsize=1)
def _cv_bridge() -> Any:
    """One CvBridge for the process, or None; cached because a failed import is slow to repeat."""
    try:
        from cv_bridge import CvBridge
    except ImportError:
        return None
    return CvBridge()


def _is_wide(encoding: str) -> bool:
    return any(tag in encoding.lower() for tag in ("16", "32", "64"))


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """Decode a JPEG/PNG ``CompressedImage`` to a fresh (H, W, 3) uint8 RGB array (OpenCV or
    Pillow, whichever is importable)."""
    if "compresseddepth" in msg.format.lower():
        raise ImageConversionError(
            f"compressed depth images ({quoted(msg.format)}) are not camera frames for the policy"
        )
    if len(msg.data) == 0:
        raise ImageConversionError(f"compressed image ({quoted(msg.format)}) has no data")
    decode = _compressed_decoder()
    try:
        rgb = decode(bytes(msg.data))
    except Exception as exc:  # decoders raise library-specific types
        raise ImageConversionError(
            f"could not decode compressed image with format {quoted(msg.format)} "
            f"({len(msg.data)} bytes): {exc}"
        ) from exc
    if rgb is None:
        raise ImageConversionError(
            f"could not decode compressed image with format {quoted(msg.format)} ({len(msg.data)} bytes)"
        )
    return rgb


@functools.lru_cache(maxsize=1)
def _compressed_decoder() -> Callable[[bytes], np.ndarray | None]:
    """cv2 when importable, else Pillow; the error says what to install when neither is."""
    try:
        import cv2
    except ImportError:
        pass
    else:

        def decode_cv2(data: bytes) -> np.ndarray | None:
            bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
            return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

        return decode_cv2
    try:
        from PIL import Image as PilImage
    except ImportError:
        raise ImageConversionError(
            "decoding sensor_msgs/CompressedImage needs OpenCV or Pillow: "
            "pip install opencv-python-headless (or pillow)"
        ) from None

    def decode_pillow(data: bytes) -> np.ndarray:
        with PilImage.open(io.BytesIO(data)) as image:
            return np.array(image.convert("RGB"))  # a writable copy, unlike np.asarray

    return decode_pillow


def rgb_to_image(rgb: np.ndarray, stamp: StampLike, frame_id: str, encoding: str = "rgb8") -> Image:
    """An ``Image`` (rgb8 or bgr8, unpadded rows) from an (H, W, 3) uint8 RGB array."""
    if encoding not in OUTPUT_ENCODINGS:
        raise ImageConversionError(f"output encoding must be one of {OUTPUT_ENCODINGS}, got {encoding!r}")
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ImageConversionError(
            f"expected a non-empty (H, W, 3) uint8 RGB array, got {rgb.dtype} {rgb.shape}"
        )
    pixels = rgb if encoding == "rgb8" else _copy_channels(rgb, (2, 1, 0))
    msg = Image()
    msg.header.stamp = to_stamp(stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = rgb.shape[:2]
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = rgb.shape[1] * 3
    msg.data = pixels.tobytes()  # C order, whatever the input's strides
    return msg
