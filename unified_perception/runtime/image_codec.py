"""Camera images between ROS message fields and numpy, without cv_bridge.

Pure numpy + cv2. Works on anything with the fields of ``sensor_msgs/Image`` (``height``,
``width``, ``encoding``, ``is_bigendian``, ``step``, ``data``) or ``sensor_msgs/CompressedImage``
(``format``, ``data``): rclpy messages, rosbags messages, or a plain dataclass. ``data`` may be
``bytes``, ``bytearray``, ``array.array('B')`` or a ``uint8`` numpy array.

* :func:`decode_rgb` -> ``[H, W, 3] uint8`` RGB for the network, from colour, mono, YUV 4:2:2 and
  Bayer encodings (8 and 16 bit), honouring a padded ``step`` and ``is_bigendian``.
* :func:`decode_array` -> the native array (``32FC1`` -> ``[H, W] float32``, ``32FC3`` ->
  ``[H, W, 3] float32`` ...) for data images (depth, labels, flow).
* :func:`decode_compressed_rgb` -> RGB from JPEG / PNG ``CompressedImage`` payloads; a payload
  whose header declares more than :data:`MAX_COMPRESSED_PIXELS` is refused before decoding (a few
  hundred kB of PNG can otherwise expand to gigabytes).
* :func:`encode_array` -> (encoding, height, width, step, bytes) for publishing.

Every problem a sender can cause raises :class:`ImageDecodeError` naming it.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


class ImageDecodeError(ValueError):
    """An image message cannot be decoded (unsupported encoding, bad step, truncated data)."""


@dataclass(frozen=True)
class _ColorFormat:
    """How a colour encoding is laid out and converted: dtype, channels, cv2 code to RGB."""

    dtype: str              # "uint8" | "uint16"
    channels: int           # interleaved channels (YUV 4:2:2 counts 2 bytes per pixel)
    to_rgb: int | None      # cv2.cvtColor code, None = already RGB


def _bayer_code(name: str) -> int:
    # OpenCV >= 5 names the pattern by its first row pair (RGGB ...); older versions used the
    # historical names (BayerBG = RGGB, BayerGB = GRBG, BayerRG = BGGR, BayerGR = GBRG).
    legacy = {"RGGB": "BG", "BGGR": "RG", "GBRG": "GR", "GRBG": "GB"}
    return getattr(cv2, f"COLOR_Bayer{name}2RGB", None) or getattr(
        cv2, f"COLOR_Bayer{legacy[name]}2RGB")


COLOR_FORMATS: dict[str, _ColorFormat] = {
    "rgb8": _ColorFormat("uint8", 3, None),
    "bgr8": _ColorFormat("uint8", 3, cv2.COLOR_BGR2RGB),
    "rgba8": _ColorFormat("uint8", 4, cv2.COLOR_RGBA2RGB),
    "bgra8": _ColorFormat("uint8", 4, cv2.COLOR_BGRA2RGB),
    "mono8": _ColorFormat("uint8", 1, cv2.COLOR_GRAY2RGB),
    "8UC1": _ColorFormat("uint8", 1, cv2.COLOR_GRAY2RGB),
    "8UC3": _ColorFormat("uint8", 3, cv2.COLOR_BGR2RGB),   # OpenCV's default channel order
    "rgb16": _ColorFormat("uint16", 3, None),
    "bgr16": _ColorFormat("uint16", 3, cv2.COLOR_BGR2RGB),
    "rgba16": _ColorFormat("uint16", 4, cv2.COLOR_RGBA2RGB),
    "bgra16": _ColorFormat("uint16", 4, cv2.COLOR_BGRA2RGB),
    "mono16": _ColorFormat("uint16", 1, cv2.COLOR_GRAY2RGB),
    "yuv422": _ColorFormat("uint8", 2, cv2.COLOR_YUV2RGB_UYVY),
    "uyvy": _ColorFormat("uint8", 2, cv2.COLOR_YUV2RGB_UYVY),
    "yuv422_yuy2": _ColorFormat("uint8", 2, cv2.COLOR_YUV2RGB_YUYV),
    "yuyv": _ColorFormat("uint8", 2, cv2.COLOR_YUV2RGB_YUYV),
    **{f"bayer_{p.lower()}{bits}": _ColorFormat(dt, 1, _bayer_code(p))
       for p in ("RGGB", "BGGR", "GBRG", "GRBG") for bits, dt in (("8", "uint8"), ("16", "uint16"))},
}
"""Encodings :func:`decode_rgb` accepts (names as in sensor_msgs/image_encodings)."""

_NAMED_DATA_ENCODINGS: dict[str, tuple[str, int]] = {
    "mono8": ("uint8", 1), "mono16": ("uint16", 1),
    "rgb8": ("uint8", 3), "bgr8": ("uint8", 3), "rgba8": ("uint8", 4), "bgra8": ("uint8", 4),
    "rgb16": ("uint16", 3), "bgr16": ("uint16", 3), "rgba16": ("uint16", 4), "bgra16": ("uint16", 4),
}
_CV_TYPE = re.compile(r"^(8|16|32|64)([USF])C([1-9][0-9]*)$")
_CV_DTYPES = {("8", "U"): "uint8", ("8", "S"): "int8", ("16", "U"): "uint16",
              ("16", "S"): "int16", ("32", "S"): "int32", ("32", "F"): "float32",
              ("64", "F"): "float64", ("32", "U"): "uint32"}


def data_layout(encoding: str) -> tuple[np.dtype, int]:
    """``(dtype, channels)`` of an encoding for :func:`decode_array` / :func:`encode_array`.

    Accepts the named encodings (``mono8``, ``rgb8``, ``mono16``...) and OpenCV-style ones
    (``32FC1``, ``16UC1``, ``32SC1``, ``32FC3``...). Raises :class:`ImageDecodeError` otherwise.
    """
    if encoding in _NAMED_DATA_ENCODINGS:
        dtype, channels = _NAMED_DATA_ENCODINGS[encoding]
        return np.dtype(dtype), channels
    match = _CV_TYPE.match(encoding)
    if match and (match.group(1), match.group(2)) in _CV_DTYPES:
        return np.dtype(_CV_DTYPES[(match.group(1), match.group(2))]), int(match.group(3))
    raise ImageDecodeError(
        f"unsupported data image encoding '{encoding}' (use mono8/mono16/rgb8/... or an "
        f"OpenCV type such as 32FC1, 16UC1, 32SC1, 32FC3)")


def _buffer(data: Any) -> np.ndarray:
    """The message payload as a flat ``uint8`` array, without a copy where possible."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(memoryview(data), dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def _pixels(msg: Any, dtype: np.dtype, channels: int) -> np.ndarray:
    """Rows of ``msg.data`` cut to ``width`` pixels: ``[H, W, C]`` of ``dtype`` in native order."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"image has no pixels ({width}x{height})")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageDecodeError(
            f"step {step} is smaller than width {width} x {channels * dtype.itemsize} bytes per "
            f"pixel = {row_bytes} for encoding '{msg.encoding}'")
    raw = _buffer(msg.data)
    if raw.size < step * height:
        raise ImageDecodeError(
            f"data has {raw.size} bytes, step {step} x height {height} needs {step * height} "
            f"(truncated image, encoding '{msg.encoding}')")
    rows = raw[: step * height].reshape(height, step)[:, :row_bytes]
    order = ">" if bool(msg.is_bigendian) else "<"
    wire = dtype.newbyteorder(order) if dtype.itemsize > 1 else dtype
    if rows.strides[0] % wire.itemsize or rows.ctypes.data % wire.itemsize:
        rows = np.ascontiguousarray(rows)      # odd step or unaligned buffer: view needs alignment
    pixels = rows.view(wire).reshape(height, width, channels)
    if wire.byteorder not in ("=", "|") and (wire.byteorder == ">") != (sys.byteorder == "big"):
        pixels = pixels.astype(dtype)
    return pixels


def decode_rgb(msg: Any) -> np.ndarray:
    """Decode an Image message to ``[H, W, 3] uint8`` RGB.

    16-bit encodings keep their top 8 bits. Raises :class:`ImageDecodeError` for an unsupported
    encoding, a ``step`` smaller than a row or data shorter than ``step * height``.
    """
    fmt = COLOR_FORMATS.get(msg.encoding)
    if fmt is None:
        raise ImageDecodeError(
            f"unsupported camera image encoding '{msg.encoding}'; supported: "
            f"{', '.join(sorted(COLOR_FORMATS))} (or publish sensor_msgs/CompressedImage)")
    if fmt.to_rgb in (cv2.COLOR_YUV2RGB_UYVY, cv2.COLOR_YUV2RGB_YUYV) and int(msg.width) % 2:
        raise ImageDecodeError(f"YUV 4:2:2 image width must be even, got {msg.width}")
    pixels = _pixels(msg, np.dtype(fmt.dtype), fmt.channels)
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    if fmt.to_rgb is None:
        return np.ascontiguousarray(pixels)
    src = pixels[..., 0] if fmt.channels == 1 else pixels
    return cv2.cvtColor(np.ascontiguousarray(src), fmt.to_rgb)


def decode_array(msg: Any) -> np.ndarray:
    """Decode a data Image (depth, labels, flow) to its native array.

    Returns ``[H, W]`` for one channel, ``[H, W, C]`` otherwise, in the encoding's dtype
    (``32FC1`` -> float32, ``16UC1`` -> uint16, ``32SC1`` -> int32, ``mono8`` -> uint8...).
    """
    dtype, channels = data_layout(msg.encoding)
    pixels = _pixels(msg, dtype, channels)
    return np.ascontiguousarray(pixels[..., 0] if channels == 1 else pixels)


MAX_COMPRESSED_PIXELS = 40_000_000
"""Largest image (pixels) a CompressedImage may declare: above any automotive camera (8K UHD is
33 MP), far below what a crafted header could make the decoder allocate."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}   # start-of-frame markers
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xDA)])         # markers without a length


def compressed_size_hw(raw: np.ndarray) -> tuple[int, int] | None:
    """``(height, width)`` declared by a PNG (IHDR) or JPEG (SOFn) header, None if not found.

    Reads the header only; ``raw`` is the payload as a flat ``uint8`` array.
    """
    head = raw[:24].tobytes()
    if head.startswith(_PNG_SIGNATURE) and len(head) >= 24 and head[12:16] == b"IHDR":
        return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")
    if not head.startswith(b"\xff\xd8"):
        return None
    data, i = raw, 2
    while i + 3 < data.size:
        if data[i] != 0xFF:
            return None
        marker = int(data[i + 1])
        if marker == 0xFF:          # fill byte
            i += 1
            continue
        if marker in _JPEG_STANDALONE:
            i += 2
            continue
        if marker == 0xDA:          # start of scan: no frame header before it
            return None
        if marker in _JPEG_SOF and i + 8 < data.size:
            return (int(data[i + 5]) << 8 | int(data[i + 6]), int(data[i + 7]) << 8 | int(data[i + 8]))
        i += 2 + (int(data[i + 2]) << 8 | int(data[i + 3]))
    return None


def decode_compressed_rgb(msg: Any) -> np.ndarray:
    """Decode a CompressedImage (JPEG, PNG, anything cv2.imdecode reads) to ``[H, W, 3] uint8`` RGB.

    Raises :class:`ImageDecodeError` for an empty, undecodable, truncated or oversized payload
    (more than :data:`MAX_COMPRESSED_PIXELS` declared in its header).
    """
    raw = _buffer(msg.data)
    if raw.size == 0:
        raise ImageDecodeError(f"compressed image ('{msg.format}') has no data")
    size_hw = compressed_size_hw(raw)
    if size_hw is not None and size_hw[0] * size_hw[1] > MAX_COMPRESSED_PIXELS:
        raise ImageDecodeError(
            f"compressed image ('{msg.format}', {raw.size} bytes) declares {size_hw[1]}x"
            f"{size_hw[0]} pixels, more than the {MAX_COMPRESSED_PIXELS} this node decodes")
    try:
        image = cv2.imdecode(raw, cv2.IMREAD_COLOR)
    except cv2.error as err:    # OpenCV's own size / format checks
        raise ImageDecodeError(
            f"compressed image with format '{msg.format}' ({raw.size} bytes) could not be decoded: "
            f"{str(err).strip().splitlines()[-1]}") from None
    if image is None:
        raise ImageDecodeError(
            f"compressed image with format '{msg.format}' ({raw.size} bytes) could not be decoded "
            f"(expected JPEG or PNG)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decode_any_rgb(msg: Any) -> np.ndarray:
    """:func:`decode_compressed_rgb` for messages with a ``format`` field, else :func:`decode_rgb`."""
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return decode_compressed_rgb(msg)
    return decode_rgb(msg)


@dataclass(frozen=True)
class EncodedImage:
    """The fields of an Image message for one array (little-endian, unpadded rows)."""

    encoding: str
    height: int
    width: int
    step: int
    data: bytes
    is_bigendian: bool = False


def pack_array(array: np.ndarray, encoding: str) -> np.ndarray:
    """``array`` (``[H, W]`` or ``[H, W, C]``) as the C-contiguous little-endian ``[H, W, C]``
    array of ``encoding``'s dtype, whose bytes are the image data (row step = W * C * itemsize).

    Raises ValueError if the channel count does not match the encoding.
    """
    dtype, channels = data_layout(encoding)
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] != channels:
        raise ValueError(f"encoding '{encoding}' needs {channels} channel(s), got an array of "
                         f"shape {np.asarray(array).shape}")
    return np.ascontiguousarray(arr, dtype=dtype.newbyteorder("<"))


def encode_array(array: np.ndarray, encoding: str) -> EncodedImage:
    """Pack ``array`` (``[H, W]`` or ``[H, W, C]``) as ``encoding`` (e.g. ``32FC1``, ``rgb8``).

    The array is cast to the encoding's dtype; its channel count must match. Raises ValueError
    if it does not.
    """
    packed = pack_array(array, encoding)
    height, width, channels = packed.shape
    return EncodedImage(encoding, height, width, width * channels * packed.itemsize,
                        packed.tobytes(), False)
