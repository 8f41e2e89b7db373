"""Camera messages read from their serialized bytes (ros/received.py) have the fields rclpy's own
deserialization gives, decode to the same pixels, and a malformed payload is refused with one
clear ImageDecodeError."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CompressedImage, Image

from unified_perception.ros import builders, received
from unified_perception.runtime.image_codec import ImageDecodeError, decode_any_rgb

FRAME_IDS = ("", "c", "cam", "front_optical", "a_rather_longer_optical_frame_id_7")


def _image(frame_id: str, encoding: str = "rgb8", shape=(5, 7, 3), step_pad: int = 0,
           seconds: float = 1712.25) -> Image:
    rng = np.random.default_rng(len(frame_id) + step_pad)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    msg = builders.image(pixels, encoding, builders.header(builders.s_to_stamp(seconds), frame_id))
    if step_pad:    # rows padded beyond width x bytes per pixel
        rows = np.asarray(msg.data, np.uint8).reshape(msg.height, msg.step)
        padded = np.zeros((msg.height, msg.step + step_pad), np.uint8)
        padded[:, :msg.step] = rows
        msg.step += step_pad
        msg.data = padded.tobytes()
    return msg


def _same_fields(got, msg: Image) -> None:
    assert got.header.stamp == msg.header.stamp
    assert got.header.frame_id == msg.header.frame_id
    assert (got.height, got.width, got.encoding, got.is_bigendian, got.step) == \
        (msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step)
    assert got.data.tobytes() == bytes(msg.data)


@pytest.mark.parametrize("frame_id", FRAME_IDS)
@pytest.mark.parametrize("encoding,shape,step_pad", [
    ("rgb8", (5, 7, 3), 0), ("bgr8", (4, 6, 3), 3), ("mono8", (3, 9), 1), ("mono16", (4, 5), 2),
])
def test_an_image_reads_as_rclpy_deserializes_it(frame_id: str, encoding: str, shape, step_pad: int) -> None:
    if encoding == "mono16":
        pixels = np.random.default_rng(3).integers(0, 65536, shape, dtype=np.uint16)
        msg = builders.image(pixels, encoding, builders.header(builders.s_to_stamp(-3.5), frame_id))
    else:
        msg = _image(frame_id, encoding, shape, step_pad)
    got = received.read_image(serialize_message(msg))
    _same_fields(got, msg)
    np.testing.assert_array_equal(decode_any_rgb(got), decode_any_rgb(msg))


def test_the_pixels_are_a_view_of_the_received_bytes() -> None:
    data = serialize_message(_image("front_optical", shape=(48, 64, 3)))
    got = received.read_image(data)
    assert not got.data.flags.writeable
    assert np.shares_memory(got.data, np.frombuffer(data, np.uint8))


@pytest.mark.parametrize("frame_id", FRAME_IDS)
def test_a_compressed_image_reads_as_rclpy_deserializes_it(frame_id: str) -> None:
    import cv2

    rgb = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    ok, png = cv2.imencode(".png", rgb[..., ::-1])
    assert ok
    msg = CompressedImage(header=builders.header(builders.s_to_stamp(9.75), frame_id), format="png",
                          data=png.tobytes())
    got = received.read_compressed_image(serialize_message(msg))
    assert (got.header.stamp, got.header.frame_id, got.format) == (msg.header.stamp, frame_id, "png")
    assert got.data.tobytes() == bytes(msg.data)
    np.testing.assert_array_equal(decode_any_rgb(got), rgb)


def test_a_big_endian_image_reads_like_the_little_endian_one() -> None:
    """CDR big endian (encapsulation 00 00), written here by hand: every count and length
    byte-swapped, the pixel bytes as they are."""
    msg = _image("cam", shape=(2, 3, 3))
    frame_id, encoding = msg.header.frame_id.encode() + b"\0", msg.encoding.encode() + b"\0"
    body = struct.pack(">iII", msg.header.stamp.sec, msg.header.stamp.nanosec, len(frame_id)) + frame_id
    body += b"\0" * (-len(body) % 4) + struct.pack(">III", msg.height, msg.width, len(encoding)) + encoding
    body += bytes([0]) + b"\0" * (-(len(body) + 1) % 4) + struct.pack(">II", msg.step, len(msg.data))
    got = received.read_image(b"\x00\x00\x00\x00" + body + bytes(msg.data))
    _same_fields(got, msg)


def test_serialized_camera_messages_are_read_on_demand() -> None:
    msg = _image("front_optical")
    plain = received.read_camera_message(msg)
    assert plain is msg                                          # a typed message passes through
    got = received.read_camera_message(received.SerializedCameraMessage(serialize_message(msg), False))
    _same_fields(got, msg)


@pytest.mark.parametrize("cut", [0, 3, 11, 20, 40])
def test_a_truncated_payload_is_refused_with_its_length(cut: int) -> None:
    data = serialize_message(_image("front_optical"))
    with pytest.raises(ImageDecodeError, match="truncated|not a CDR"):
        received.read_image(data[:cut])


def test_a_payload_whose_pixel_count_overruns_it_is_refused() -> None:
    data = bytearray(serialize_message(_image("cam", shape=(2, 3, 3))))
    struct.pack_into("<I", data, len(data) - 18 - 4, 10_000)      # the data sequence's length
    with pytest.raises(ImageDecodeError, match="truncated: .* need at least"):
        received.read_image(bytes(data))


def test_a_payload_that_is_not_cdr_is_refused() -> None:
    with pytest.raises(ImageDecodeError, match="not a CDR-serialized message .* starting 7b226162"):
        received.read_image(b'{"abc": 1}')


def test_this_rclpy_subscribes_raw() -> None:
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node

    context = Context()
    rclpy.init(context=context)
    try:
        node = Node("received_probe", context=context)
        assert received.subscribes_raw(node)
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
