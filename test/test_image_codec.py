"""Image codec: every camera encoding to RGB, data images to native arrays, padded step, errors."""

from __future__ import annotations

import array

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from unified_perception.runtime.image_codec import (
    COLOR_FORMATS, ImageDecodeError, decode_any_rgb, decode_array, decode_compressed_rgb,
    decode_rgb, encode_array)

H, W = 6, 8
COLOR = np.array([200, 100, 30], np.uint8)


def _rgb_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _message(pixels: np.ndarray, encoding: str, pad: int = 0, big_endian: bool = False) -> Image:
    """A real sensor_msgs/Image whose rows are ``pad`` bytes longer than the pixels."""
    pixels = pixels if pixels.ndim == 3 else pixels[..., None]
    wire = pixels.astype(pixels.dtype.newbyteorder(">" if big_endian else "<"))
    rows = wire.reshape(pixels.shape[0], -1).view(np.uint8)
    padded = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
                is_bigendian=int(big_endian), step=padded.shape[1])
    msg.data = array.array("B", padded.tobytes())
    return msg


@pytest.mark.parametrize("pad", [0, 5])
def test_rgb_family_decodes_to_the_same_rgb_with_or_without_row_padding(pad: int) -> None:
    rgb = _rgb_image()
    bgr = rgb[..., ::-1]
    alpha = np.full((H, W, 1), 7, np.uint8)
    cases = {
        "rgb8": rgb, "bgr8": bgr, "8UC3": bgr,
        "rgba8": np.concatenate([rgb, alpha], 2), "bgra8": np.concatenate([bgr, alpha], 2),
    }
    for encoding, pixels in cases.items():
        np.testing.assert_array_equal(decode_rgb(_message(pixels, encoding, pad)), rgb, encoding)


@pytest.mark.parametrize("big_endian", [False, True])
def test_16_bit_encodings_keep_the_top_byte_in_either_byte_order(big_endian: bool) -> None:
    rgb = _rgb_image()
    wide = rgb.astype(np.uint16) * 256 + 0x7F
    alpha = np.full((H, W, 1), 65535, np.uint16)
    cases = {"rgb16": wide, "bgr16": wide[..., ::-1], "rgba16": np.concatenate([wide, alpha], 2),
             "bgra16": np.concatenate([wide[..., ::-1], alpha], 2)}
    for encoding, pixels in cases.items():
        msg = _message(np.ascontiguousarray(pixels), encoding, pad=3, big_endian=big_endian)
        np.testing.assert_array_equal(decode_rgb(msg), rgb, encoding)
    gray = wide[..., 0]
    out = decode_rgb(_message(gray, "mono16", pad=2, big_endian=big_endian))
    np.testing.assert_array_equal(out, np.repeat(rgb[..., :1], 3, axis=2))


def test_mono8_becomes_grey_rgb() -> None:
    gray = _rgb_image()[..., 0]
    out = decode_rgb(_message(gray, "mono8", pad=1))
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))


def _yuv_of(rgb: np.ndarray) -> tuple[int, int, int]:
    """BT.601 studio-swing Y, U, V of one RGB colour (the convention cv2 decodes)."""
    r, g, b = (float(c) for c in rgb)
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return round(y), round(u), round(v)


@pytest.mark.parametrize("encoding,order", [("yuv422", "UYVY"), ("uyvy", "UYVY"),
                                            ("yuv422_yuy2", "YUYV"), ("yuyv", "YUYV")])
def test_yuv422_packings_decode_to_the_colour(encoding: str, order: str) -> None:
    y, u, v = _yuv_of(COLOR)
    quad = {"UYVY": [u, y, v, y], "YUYV": [y, u, y, v]}[order]
    pixels = np.tile(np.array(quad, np.uint8), (H, W // 2)).reshape(H, W, 2)
    out = decode_rgb(_message(pixels, encoding, pad=4))
    assert out.shape == (H, W, 3)
    assert np.abs(out.astype(int) - COLOR).max() <= 3


def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Sample ``rgb`` through a 2x2 colour filter ``pattern`` (e.g. 'rggb', row-major)."""
    channel = {"r": 0, "g": 1, "b": 2}
    out = np.empty(rgb.shape[:2], rgb.dtype)
    for k, letter in enumerate(pattern):
        dy, dx = divmod(k, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, channel[letter]]
    return out


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("bits", [8, 16])
def test_bayer_patterns_demosaic_to_the_scene_colour(pattern: str, bits: int) -> None:
    scene = np.broadcast_to(COLOR, (H, W, 3)).astype(np.uint16 if bits == 16 else np.uint8)
    if bits == 16:
        scene = scene * 256
    out = decode_rgb(_message(_mosaic(scene, pattern), f"bayer_{pattern}{bits}", pad=2))
    assert out.shape == (H, W, 3)
    np.testing.assert_array_equal(out[2:-2, 2:-2], np.broadcast_to(COLOR, (H - 4, W - 4, 3)))


def test_every_advertised_colour_encoding_is_covered_by_a_test() -> None:
    tested = {"rgb8", "bgr8", "8UC3", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16", "bgra16",
              "mono16", "mono8", "8UC1", "yuv422", "uyvy", "yuv422_yuy2", "yuyv"}
    tested |= {f"bayer_{p}{b}" for p in ("rggb", "bggr", "gbrg", "grbg") for b in (8, 16)}
    assert set(COLOR_FORMATS) == tested


@pytest.mark.parametrize("encoding,dtype,channels", [
    ("32FC1", np.float32, 1), ("16UC1", np.uint16, 1), ("32SC1", np.int32, 1),
    ("32FC3", np.float32, 3), ("mono8", np.uint8, 1), ("8UC1", np.uint8, 1),
    ("64FC1", np.float64, 1), ("16SC1", np.int16, 1)])
@pytest.mark.parametrize("big_endian", [False, True])
def test_data_images_round_trip_in_their_native_dtype(encoding, dtype, channels, big_endian) -> None:
    rng = np.random.default_rng(1)
    values = (rng.normal(size=(H, W, channels)) * 1000).astype(dtype)
    expected = values[..., 0] if channels == 1 else values
    encoded = encode_array(expected, encoding)
    assert encoded.step == W * channels * np.dtype(dtype).itemsize and not encoded.is_bigendian
    msg = Image(height=encoded.height, width=encoded.width, encoding=encoded.encoding,
                step=encoded.step, data=array.array("B", encoded.data))
    decoded = decode_array(msg)
    assert decoded.dtype == dtype and decoded.shape == expected.shape
    np.testing.assert_array_equal(decoded, expected)
    padded = decode_array(_message(values, encoding, pad=3, big_endian=big_endian))
    np.testing.assert_array_equal(padded, expected)


def test_encode_rejects_a_channel_mismatch() -> None:
    with pytest.raises(ValueError, match="needs 3 channel"):
        encode_array(np.zeros((H, W), np.float32), "32FC3")


def test_compressed_jpeg_and_png_decode_to_rgb() -> None:
    rgb = np.ascontiguousarray(np.broadcast_to(COLOR, (16, 16, 3)))
    for fmt, ext in (("rgb8; png compressed bgr8", ".png"), ("rgb8; jpeg compressed bgr8", ".jpg")):
        ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert ok
        msg = CompressedImage(format=fmt)
        msg.data = array.array("B", buf.tobytes())
        out = decode_any_rgb(msg)
        assert out.shape == (16, 16, 3)
        assert np.abs(out.astype(int) - COLOR).max() <= (0 if ext == ".png" else 4)


def test_duck_typed_messages_with_numpy_data_decode_like_ros_messages() -> None:
    """rosbags messages carry ``data`` as a numpy array; any object with the fields works."""
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    RosbagsImage = store.types["sensor_msgs/msg/Image"]
    rgb = _rgb_image()
    ros = _message(rgb[..., ::-1].copy(), "bgr8", pad=2)
    msg = RosbagsImage(header=Header(stamp=Time(sec=0, nanosec=0), frame_id="cam"),
                       height=ros.height, width=ros.width, encoding=ros.encoding,
                       is_bigendian=0, step=ros.step, data=np.frombuffer(ros.data, np.uint8))
    np.testing.assert_array_equal(decode_rgb(msg), rgb)


def test_unsupported_encoding_is_rejected_by_name() -> None:
    msg = _message(_rgb_image(), "rgb8")
    msg.encoding = "hsv8"
    with pytest.raises(ImageDecodeError, match="unsupported camera image encoding 'hsv8'"):
        decode_rgb(msg)
    with pytest.raises(ImageDecodeError, match="unsupported data image encoding 'hsv8'"):
        decode_array(msg)


def test_step_smaller_than_a_row_is_rejected() -> None:
    msg = _message(_rgb_image(), "rgb8")
    msg.step = W * 3 - 1
    with pytest.raises(ImageDecodeError, match="step 23 is smaller than width 8"):
        decode_rgb(msg)


def test_truncated_data_is_rejected() -> None:
    msg = _message(_rgb_image(), "rgb8", pad=4)
    msg.data = msg.data[:-1]
    with pytest.raises(ImageDecodeError, match="truncated"):
        decode_rgb(msg)


def test_garbage_compressed_payload_and_odd_yuv_width_are_rejected() -> None:
    msg = CompressedImage(format="jpeg")
    msg.data = array.array("B", b"not a jpeg at all")
    with pytest.raises(ImageDecodeError, match="could not be decoded"):
        decode_compressed_rgb(msg)
    yuv = _message(np.zeros((H, 3, 2), np.uint8), "yuv422")
    with pytest.raises(ImageDecodeError, match="must be even"):
        decode_rgb(yuv)
