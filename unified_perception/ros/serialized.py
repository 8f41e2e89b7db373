"""The node's large outputs written straight as serialized ROS 2 messages (CDR bytes).

rclpy publishes ``bytes`` as an already serialized message (``Publisher.publish`` ->
``publish_raw``). For an image that skips the Python message object, the ``array.array`` copy of
its data, rclpy's conversion into a C message and the middleware's serialization of it (about 35
of 55 us for a 96x320 depth image in a quiet loop, several times that in the node; nine such
messages per camera per frame, ``docs/deployment.md``). Subscribers cannot tell the difference: the
bytes are what the middleware would have written (the tests compare them with
``rclpy.serialization.serialize_message`` of the same message built by :mod:`ros.builders`).

Encoding: plain CDR (XCDR1) little endian, encapsulation ``00 01 00 00``, as ROS 2's RMWs write it;
primitives aligned to their size relative to the start of the payload; strings as uint32 length
(NUL included) + bytes + NUL; sequences as uint32 count + elements.
"""

from __future__ import annotations

import functools
import struct
from typing import Any

import numpy as np
from std_msgs.msg import Header

from unified_perception.runtime.camera_info import camera_info_fields
from unified_perception.runtime.image_codec import pack_array
from unified_perception.runtime.scene_flow import FLOW_CLOUD_FIELDS, pack_flow_cloud

CDR_LE_ENCAPSULATION = b"\x00\x01\x00\x00"
"""The four bytes before every serialized ROS 2 message: CDR, little endian, no options."""

POINT_FIELD_FLOAT32 = 7
"""``sensor_msgs/PointField.FLOAT32``."""


def publishes_bytes() -> bool:
    """Whether this rclpy publishes serialized messages given as ``bytes`` (every rclpy since
    Foxy: ros2/rclpy#509)."""
    try:
        from rclpy.impl.implementation_singleton import rclpy_implementation as impl
    except ImportError:  # pragma: no cover - depends on the rclpy installation
        return False
    publisher = getattr(impl, "Publisher", None)    # pybind11 since Galactic; Foxy: module functions
    return hasattr(publisher, "publish_raw") or hasattr(impl, "rclpy_publish_raw")


class CdrWriter:
    """Appends CDR fields; :meth:`message` joins them behind the encapsulation header.

    Large payloads (image and cloud data) are kept as buffers and copied once, by the join.
    """

    def __init__(self) -> None:
        self._parts: list[Any] = [CDR_LE_ENCAPSULATION]
        self._offset = 0        # bytes written after the encapsulation header (alignment origin)

    def _put(self, data: Any, size: int) -> None:
        self._parts.append(data)
        self._offset += size

    def align(self, size: int) -> None:
        pad = -self._offset % size
        if pad:
            self._put(b"\x00" * pad, pad)

    def uint32(self, *values: int) -> None:
        self.align(4)
        self._put(struct.pack(f"<{len(values)}I", *values), 4 * len(values))

    def int32_uint32(self, signed: int, unsigned: int) -> None:
        self.align(4)
        self._put(struct.pack("<iI", signed, unsigned), 8)

    def uint8(self, value: int) -> None:
        self._put(bytes((value,)), 1)

    def raw(self, data: bytes) -> None:
        """Bytes serialized elsewhere, whose own alignment is that of this writer's offset."""
        self._put(data, len(data))

    def string(self, text: str) -> None:
        raw = text.encode() + b"\x00"
        self.uint32(len(raw))
        self._put(raw, len(raw))

    def float64_array(self, values: np.ndarray) -> None:
        """A fixed-size float64 array (no count)."""
        data = np.ascontiguousarray(values, dtype="<f8").tobytes()
        self.align(8)
        self._put(data, len(data))

    def float64_sequence(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        self.uint32(values.size)
        if values.size:
            self.float64_array(values)

    def uint8_sequence(self, data: Any) -> None:
        """``data``: any C-contiguous buffer (bytes, memoryview, numpy array), taken as bytes."""
        view = memoryview(data).cast("B")
        self.uint32(view.nbytes)
        self._put(view, view.nbytes)

    def header(self, hdr: Header) -> None:
        """``std_msgs/Header``."""
        self.int32_uint32(hdr.stamp.sec, hdr.stamp.nanosec)
        self.string(hdr.frame_id)

    def message(self) -> bytes:
        return b"".join(self._parts)


def image(values: np.ndarray, encoding: str, hdr: Header) -> bytes:
    """``sensor_msgs/Image`` of ``values`` (``[H, W]`` or ``[H, W, C]``, cast to the encoding's
    little-endian dtype) stamped with ``hdr``: ``builders.image``, serialized."""
    packed = pack_array(values, encoding)
    height, width, channels = packed.shape
    out = CdrWriter()
    out.header(hdr)
    out.uint32(height, width)
    out.string(encoding)
    out.uint8(0)                                       # is_bigendian
    out.uint32(width * channels * packed.itemsize)     # step
    out.uint8_sequence(packed)
    return out.message()


def camera_info(K: np.ndarray, size_hw: tuple[int, int], hdr: Header,
                source: Any | None = None) -> bytes:
    """``sensor_msgs/CameraInfo`` of an image of ``size_hw`` with intrinsics ``K`` ``[3, 3]`` (px):
    ``builders.camera_info``, serialized."""
    f = camera_info_fields(K, source)
    out = CdrWriter()
    out.header(hdr)
    out.uint32(int(size_hw[0]), int(size_hw[1]))
    out.string(f.distortion_model)
    out.float64_sequence(f.d)
    for values in (f.k, f.r, f.p):
        out.float64_array(values)
    out.uint32(0, 0)            # binning_x, binning_y
    out.uint32(0, 0, 0, 0)      # roi: x_offset, y_offset, height, width
    out.uint8(0)                # roi.do_rectify
    return out.message()


@functools.lru_cache(maxsize=4)
def _flow_cloud_fields(offsets: tuple[int, ...]) -> bytes:
    """The ``fields`` sequence of the flow cloud (float32 x y z vx vy vz at ``offsets``) as CDR
    bytes. Its members need at most 4-byte alignment and it follows a uint32, so the bytes are
    the same wherever it starts."""
    out = CdrWriter()
    out.uint32(len(FLOW_CLOUD_FIELDS))
    for name, offset in zip(FLOW_CLOUD_FIELDS, offsets):
        out.string(name)
        out.uint32(offset)
        out.uint8(POINT_FIELD_FLOAT32)
        out.uint32(1)                                  # count
    return out.message()[len(CDR_LE_ENCAPSULATION):]


def flow_cloud(xyz_m: np.ndarray, velocity_mps: np.ndarray, hdr: Header) -> bytes:
    """Unorganised ``PointCloud2`` with float32 fields x, y, z (m) and vx, vy, vz (m/s) of the
    ``[M, 3]`` arrays, in the frame of ``hdr``: ``builders.flow_cloud``, serialized."""
    cloud = pack_flow_cloud(xyz_m, velocity_mps)
    out = CdrWriter()
    out.header(hdr)
    out.uint32(1, cloud.width)                         # height, width
    out.raw(_flow_cloud_fields(cloud.offsets))
    out.uint8(0)                                       # is_bigendian
    out.uint32(cloud.point_step, cloud.row_step)
    out.uint8_sequence(cloud.data)
    out.uint8(int(cloud.is_dense))
    return out.message()
