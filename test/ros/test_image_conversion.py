"""sensor_msgs Image / CompressedImage <-> (H, W, 3) uint8 RGB."""

import io
import sys

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg")
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage, Image

from lightwam_ros.ros import image_conversion
from lightwam_ros.ros.image_conversion import (
    ImageConversionError,
    compressed_to_rgb,
    image_to_rgb,
    rgb_to_image,
)

HEIGHT, WIDTH = 3, 4
PAD_BYTE = 0xEE


def reference_rgb() -> np.ndarray:
    """Every channel of every pixel distinct, so a swapped channel or shifted row shows."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    return np.stack([10 * y + x, 100 + 10 * y + x, 200 - 10 * y - x], axis=-1).astype(np.uint8)


def pixel_bytes(encoding: str, r: int, g: int, b: int) -> list[int]:
    """How one pixel is laid out in memory for each encoding (written out by hand)."""
    return {
        "rgb8": [r, g, b],
        "bgr8": [b, g, r],
        "rgba8": [r, g, b, 77],
        "bgra8": [b, g, r, 77],
        "mono8": [r],
    }[encoding]


def crafted_image(encoding: str, padding: int = 0) -> tuple[Image, np.ndarray]:
    """A message packed byte by byte from ``reference_rgb``, and the RGB array it must give."""
    rgb = reference_rgb()
    if encoding == "mono8":
        rgb = np.repeat(rgb[:, :, :1], 3, axis=2)
    data = []
    for row in rgb.tolist():
        for r, g, b in row:
            data += pixel_bytes(encoding, r, g, b)
        data += [PAD_BYTE] * padding
    msg = Image(height=HEIGHT, width=WIDTH, encoding=encoding, step=len(data) // HEIGHT, data=bytes(data))
    return msg, rgb


ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"]


@pytest.mark.parametrize("padding", [0, 5, 8])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_encoding_with_and_without_row_padding(encoding, padding):
    msg, expected = crafted_image(encoding, padding)
    rgb = image_to_rgb(msg, backend="numpy")
    assert rgb.dtype == np.uint8 and rgb.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(rgb, expected)
    assert rgb.flags.c_contiguous and rgb.flags.writeable
    assert not np.shares_memory(rgb, np.frombuffer(msg.data, dtype=np.uint8))


def test_result_is_independent_of_the_message():
    msg, expected = crafted_image("rgb8")
    rgb = image_to_rgb(msg)
    rgb[:] = 0
    np.testing.assert_array_equal(image_to_rgb(msg), expected)


def test_big_endian_flag_does_not_matter_for_8_bit_images():
    msg, expected = crafted_image("bgr8", padding=2)
    msg.is_bigendian = 1
    np.testing.assert_array_equal(image_to_rgb(msg), expected)


@pytest.mark.parametrize(
    "encoding, fragment",
    [
        ("yuv422", "unsupported image encoding 'yuv422'"),
        ("mono16", "16-bit"),
        ("16UC1", "16-bit"),
        ("", "unsupported image encoding ''"),
    ],
)
def test_unsupported_encodings_are_named(encoding, fragment):
    msg, _ = crafted_image("mono8")
    msg.encoding = encoding
    with pytest.raises(ImageConversionError, match=fragment):
        image_to_rgb(msg)


def test_truncated_and_oversized_data_are_rejected():
    msg, _ = crafted_image("rgb8", padding=2)
    full = bytes(msg.data)
    msg.data = full[:-1]
    with pytest.raises(ImageConversionError, match=r"truncated, 41 bytes instead of step\*height = 42"):
        image_to_rgb(msg)
    msg.data = full + b"\0"
    with pytest.raises(ImageConversionError, match="longer than its header says"):
        image_to_rgb(msg)


def test_step_smaller_than_a_row_is_rejected():
    msg, _ = crafted_image("rgba8")
    msg.step = WIDTH * 4 - 1
    msg.data = bytes(msg.step * HEIGHT)
    with pytest.raises(ImageConversionError, match="step 15 is smaller than width\\*channels = 16"):
        image_to_rgb(msg)


@pytest.mark.parametrize("height, width", [(0, 4), (3, 0), (0, 0)])
def test_zero_sized_images_are_rejected(height, width):
    msg = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=b"")
    with pytest.raises(ImageConversionError, match=f"empty rgb8 image: {width}x{height}"):
        image_to_rgb(msg)


def test_unknown_backend_is_rejected():
    msg, _ = crafted_image("rgb8")
    with pytest.raises(ValueError, match="backend"):
        image_to_rgb(msg, backend="opencv")


class FakeBridge:
    """Stands in for cv_bridge to show which path ``auto`` takes."""

    def imgmsg_to_cv2(self, msg, desired_encoding):
        assert desired_encoding == "rgb8"
        return np.full((msg.height, msg.width, 3), 7, dtype=np.uint8)


def test_auto_uses_cv_bridge_only_for_whole_pixel_strides(monkeypatch):
    monkeypatch.setattr(image_conversion, "_cv_bridge", lambda: FakeBridge())
    whole, _ = crafted_image("rgb8", padding=3)
    assert (image_to_rgb(whole) == 7).all()
    odd, expected = crafted_image("rgb8", padding=2)
    np.testing.assert_array_equal(image_to_rgb(odd), expected)
    np.testing.assert_array_equal(image_to_rgb(whole, backend="numpy"), crafted_image("rgb8", 3)[1])


def test_cv_bridge_backend_without_cv_bridge_says_so(monkeypatch):
    monkeypatch.setattr(image_conversion, "_cv_bridge", lambda: None)
    msg, expected = crafted_image("bgr8")
    with pytest.raises(ImageConversionError, match="cv_bridge is not importable"):
        image_to_rgb(msg, backend="cv_bridge")
    np.testing.assert_array_equal(image_to_rgb(msg), expected)  # auto falls back to NumPy


@pytest.mark.parametrize("padding", [0, 4, 5])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_cv_bridge_and_numpy_agree(encoding, padding):
    pytest.importorskip("cv_bridge", reason="cv_bridge is not installed here")
    msg, _ = crafted_image(encoding, padding)
    np.testing.assert_array_equal(image_to_rgb(msg, backend="cv_bridge"), image_to_rgb(msg, backend="numpy"))


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_rgb_to_image_round_trips(encoding):
    rgb = reference_rgb()
    msg = rgb_to_image(rgb, stamp=Time(sec=3, nanosec=4), frame_id="wrist_cam", encoding=encoding)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (HEIGHT, WIDTH, WIDTH * 3, encoding)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (3, 4)
    assert msg.header.frame_id == "wrist_cam"
    assert list(msg.data[:3]) == pixel_bytes(encoding, *rgb[0, 0].tolist())
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


def test_rgb_to_image_accepts_strided_views_and_float_stamps():
    wide = np.zeros((HEIGHT, 2 * WIDTH, 3), dtype=np.uint8)
    wide[:, ::2] = reference_rgb()
    msg = rgb_to_image(wide[:, ::2], stamp=2.5, frame_id="cam")
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (2, 500_000_000)
    np.testing.assert_array_equal(image_to_rgb(msg), reference_rgb())


@pytest.mark.parametrize(
    "array, encoding",
    [
        (np.zeros((2, 2, 3), dtype=np.float32), "rgb8"),
        (np.zeros((2, 2), dtype=np.uint8), "rgb8"),
        (np.zeros((2, 2, 4), dtype=np.uint8), "rgb8"),
        (np.zeros((0, 2, 3), dtype=np.uint8), "rgb8"),
        (np.zeros((2, 2, 3), dtype=np.uint8), "mono8"),
    ],
)
def test_rgb_to_image_rejects_bad_input(array, encoding):
    with pytest.raises(ImageConversionError):
        rgb_to_image(array, stamp=0.0, frame_id="cam", encoding=encoding)


# --- CompressedImage --------------------------------------------------------------------------


@pytest.fixture
def fresh_decoder_choice():
    image_conversion._compressed_decoder.cache_clear()
    yield
    image_conversion._compressed_decoder.cache_clear()


def encoded(array: np.ndarray, fmt: str) -> CompressedImage:
    """Pillow picks the mode from the array: (H, W) grey, (H, W, 3) RGB, (H, W, 4) RGBA."""
    pil = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    pil.fromarray(array).save(buffer, format=fmt)
    return CompressedImage(format=fmt.lower(), data=buffer.getvalue())


def test_png_decodes_exactly(fresh_decoder_choice):
    rgb = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    decoded = compressed_to_rgb(encoded(rgb, "PNG"))
    assert decoded.dtype == np.uint8 and decoded.flags.c_contiguous and decoded.flags.writeable
    np.testing.assert_array_equal(decoded, rgb)


def test_grey_and_rgba_pngs_become_rgb(fresh_decoder_choice):
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8)
    np.testing.assert_array_equal(
        compressed_to_rgb(encoded(grey, "PNG")), np.repeat(grey[:, :, None], 3, axis=2)
    )
    rgba = np.random.default_rng(2).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    np.testing.assert_array_equal(compressed_to_rgb(encoded(rgba, "PNG")), rgba[..., :3])


def test_jpeg_decodes_close_to_the_original(fresh_decoder_choice):
    y, x = np.mgrid[0:32, 0:48]
    smooth = np.stack([x * 5, y * 7, 128 + 0 * x], axis=-1).astype(np.uint8)
    decoded = compressed_to_rgb(encoded(smooth, "JPEG"))
    assert decoded.shape == smooth.shape
    assert np.abs(decoded.astype(int) - smooth).mean() < 3.0


@pytest.mark.parametrize(
    "msg, fragment",
    [
        (CompressedImage(format="jpeg", data=b""), "has no data"),
        (CompressedImage(format="png", data=b"not an image at all"), "could not decode .* 'png'"),
        (CompressedImage(format="16UC1; compressedDepth", data=b"\x00" * 16), "compressed depth"),
    ],
)
def test_bad_compressed_images_are_rejected(msg, fragment, fresh_decoder_choice):
    pytest.importorskip("PIL")
    with pytest.raises(ImageConversionError, match=fragment):
        compressed_to_rgb(msg)


def test_missing_decoders_say_what_to_install(monkeypatch, fresh_decoder_choice):
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes "import cv2" raise ImportError
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImageConversionError, match="pip install opencv-python-headless"):
        compressed_to_rgb(CompressedImage(format="png", data=b"\x89PNG"))
