"""Camera messages taken as serialized bytes and read without a Python message object.

The node subscribes to its camera images with ``raw=True`` where rclpy offers it
(:func:`subscribes_raw`): the middleware hands over the CDR bytes, and :func:`read_camera_message`
reads the few header fields and leaves the pixels where they are (a numpy view of the bytes).
rclpy's own conversion builds a Python message and copies the pixels once more into an
``array.array``: 0.61 ms for a 720p rgb8 frame and 2.5 ms at 1080p on the executor thread (2-core
AVX2 CPU), against 3 us to read the fields here. The result has the fields of
``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage`` that the node uses, so
:mod:`runtime.image_codec` decodes it like a message.

Encodings read: CDR (XCDR1) and plain XCDR2, little or big endian (encapsulation ids 0x0000,
0x0001, 0x0006, 0x0007). Both messages are final types whose members need at most 4-byte
alignment, where the two versions lay out the same bytes. A payload that is none of these, or
shorter than its own lengths say, raises :class:`runtime.image_codec.ImageDecodeError` naming
the problem, which the node counts as an invalid frame like any other undecodable image.
"""

from __future__ import annotations

import inspect
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time

from unified_perception.runtime.image_codec import ImageDecodeError

ENCAPSULATION_ORDER: dict[bytes, str] = {
    b"\x00\x00": ">", b"\x00\x01": "<",      # CDR (XCDR1) big / little endian
    b"\x00\x06": ">", b"\x00\x07": "<",      # plain XCDR2 big / little endian
}
"""The first two bytes of a serialized message -> struct byte order of its fields."""

HEADER_BYTES = 4
"""Encapsulation id (2 bytes) + options (2 bytes) before the fields; alignment counts after it."""


def subscribes_raw(node: Any) -> bool:
    """Whether ``node.create_subscription`` can deliver serialized messages (``raw=True``)."""
    try:
        return "raw" in inspect.signature(node.create_subscription).parameters
    except (TypeError, ValueError):  # pragma: no cover - a C-implemented or wrapped method
        return False


@dataclass(frozen=True)
class ReceivedHeader:
    """``std_msgs/Header`` fields: ``stamp`` (builtin_interfaces/Time) and ``frame_id``."""

    stamp: Time
    frame_id: str


@dataclass(frozen=True)
class ReceivedImage:
    """``sensor_msgs/Image`` fields; ``data``: a read-only ``uint8`` view of the received bytes."""

    header: ReceivedHeader
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: np.ndarray


@dataclass(frozen=True)
class ReceivedCompressedImage:
    """``sensor_msgs/CompressedImage`` fields; ``data``: a read-only ``uint8`` view."""

    header: ReceivedHeader
    format: str
    data: np.ndarray


class CdrReader:
    """Reads CDR fields in order from ``buffer`` (a serialized message, header included)."""

    def __init__(self, buffer: bytes, what: str) -> None:
        self._buffer = buffer
        self._what = what
        if len(buffer) < HEADER_BYTES or bytes(buffer[:2]) not in ENCAPSULATION_ORDER:
            raise ImageDecodeError(
                f"received {what} is not a CDR-serialized message ({len(buffer)} bytes, starting "
                f"{bytes(buffer[:4]).hex() or 'empty'}); is the publisher using a ROS 2 middleware?")
        self._order = ENCAPSULATION_ORDER[bytes(buffer[:2])]
        self._offset = HEADER_BYTES

    def _take(self, size: int, align: int) -> int:
        """Start of the next ``size`` bytes after aligning to ``align``; advances past them."""
        start = self._offset + (-(self._offset - HEADER_BYTES) % align)
        end = start + size
        if end > len(self._buffer):
            raise ImageDecodeError(
                f"received {self._what} is truncated: {len(self._buffer)} bytes, its fields need "
                f"at least {end}")
        self._offset = end
        return start

    def uint32s(self, count: int) -> tuple[int, ...]:
        return struct.unpack_from(f"{self._order}{count}I", self._buffer, self._take(4 * count, 4))

    def uint8(self) -> int:
        return self._buffer[self._take(1, 1)]

    def string(self) -> str:
        (length,) = self.uint32s(1)
        start = self._take(length, 1)
        return bytes(self._buffer[start:start + max(length - 1, 0)]).decode("utf-8", "replace")

    def header(self) -> ReceivedHeader:
        sec, nanosec = struct.unpack_from(f"{self._order}iI", self._buffer, self._take(8, 4))
        return ReceivedHeader(Time(sec=sec, nanosec=nanosec), self.string())

    def uint8_sequence(self) -> np.ndarray:
        """A read-only view of the sequence's bytes (no copy)."""
        (length,) = self.uint32s(1)
        return np.frombuffer(self._buffer, np.uint8, length, self._take(length, 1))


def read_image(buffer: bytes) -> ReceivedImage:
    """A serialized ``sensor_msgs/Image`` -> :class:`ReceivedImage` (pixels not copied)."""
    cdr = CdrReader(buffer, "sensor_msgs/Image")
    header = cdr.header()
    height, width = cdr.uint32s(2)
    encoding = cdr.string()
    is_bigendian = cdr.uint8()
    (step,) = cdr.uint32s(1)
    return ReceivedImage(header, height, width, encoding, is_bigendian, step, cdr.uint8_sequence())


def read_compressed_image(buffer: bytes) -> ReceivedCompressedImage:
    """A serialized ``sensor_msgs/CompressedImage`` -> :class:`ReceivedCompressedImage`."""
    cdr = CdrReader(buffer, "sensor_msgs/CompressedImage")
    header = cdr.header()
    fmt = cdr.string()
    return ReceivedCompressedImage(header, fmt, cdr.uint8_sequence())


@dataclass(frozen=True)
class SerializedCameraMessage:
    """A camera message as the middleware delivered it, read on the worker thread
    (:meth:`read`), so that the executor thread only stores it."""

    data: bytes
    compressed: bool

    def read(self) -> ReceivedImage | ReceivedCompressedImage:
        """The message's fields; raises ImageDecodeError for a malformed payload."""
        return read_compressed_image(self.data) if self.compressed else read_image(self.data)


def read_camera_message(msg: Any) -> Any:
    """``msg`` read if it is a :class:`SerializedCameraMessage`, else ``msg`` itself (an rclpy
    message from a typed subscription). Raises ImageDecodeError for a malformed payload."""
    return msg.read() if isinstance(msg, SerializedCameraMessage) else msg
