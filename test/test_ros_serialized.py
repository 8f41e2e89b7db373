"""The node's serialized outputs (ros/serialized.py) are the messages ros/builders.py builds: the
same fields after deserialization and the same length as rclpy's own serialization, for every
encoding the node publishes, any frame id length (alignment) and any distortion model."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from unified_perception.ros import builders, serialized
from unified_perception.runtime.scene_flow import scene_flow_points

FRAME_IDS = ("", "c", "cam", "front_optical", "a_rather_longer_optical_frame_id_7")
ARRAYS = {
    "32FC1": lambda rng: rng.normal(10.0, 5.0, (12, 20)).astype(np.float32),
    "mono8": lambda rng: rng.integers(0, 256, (12, 20), dtype=np.uint8),
    "rgb8": lambda rng: rng.integers(0, 256, (7, 5, 3), dtype=np.uint8),
    "16UC1": lambda rng: rng.integers(0, 65536, (7, 5), dtype=np.uint16),
    "32SC1": lambda rng: rng.integers(-5, 9000, (12, 20), dtype=np.int32),
    "32FC3": lambda rng: rng.normal(0.0, 1.0, (12, 20, 3)).astype(np.float32),
}


def _header(frame_id: str, seconds: float = 1712.25):
    return builders.header(builders.s_to_stamp(seconds), frame_id)


def _same_message(data: bytes, reference, msg_type) -> None:
    assert isinstance(data, bytes)
    assert data[:4] == serialized.CDR_LE_ENCAPSULATION
    assert len(data) == len(serialize_message(reference))
    assert deserialize_message(data, msg_type) == reference


def test_this_rclpy_publishes_serialized_messages() -> None:
    assert serialized.publishes_bytes()


@pytest.mark.parametrize("frame_id", FRAME_IDS)
@pytest.mark.parametrize("encoding", sorted(ARRAYS))
def test_an_image_is_the_builders_image_serialized(encoding: str, frame_id: str) -> None:
    values = ARRAYS[encoding](np.random.default_rng(len(frame_id)))
    hdr = _header(frame_id)
    _same_message(serialized.image(values, encoding, hdr), builders.image(values, encoding, hdr), Image)


def test_an_image_from_a_strided_or_other_dtype_array_is_cast_like_the_builders() -> None:
    flow_chw = np.random.default_rng(1).normal(size=(3, 6, 10)).astype(np.float64)
    hwc = flow_chw.transpose(1, 2, 0)              # not contiguous, float64 -> 32FC3
    hdr = _header("cam")
    _same_message(serialized.image(hwc, "32FC3", hdr), builders.image(hwc, "32FC3", hdr), Image)
    with pytest.raises(ValueError, match="needs 1 channel"):
        serialized.image(hwc, "32FC1", hdr)


@pytest.mark.parametrize("frame_id", FRAME_IDS)
@pytest.mark.parametrize("source", [
    None,
    CameraInfo(distortion_model="plumb_bob", d=[-0.3, 0.1, 0.001, 0.002, 0.0]),
    CameraInfo(distortion_model="equidistant", d=[0.1, -0.02, 0.003, -0.0004]),
    CameraInfo(distortion_model="rational_polynomial", d=[-0.3, 0.1, 0.001, 0.002, 0.0, 0.01, 0.0, 0.0]),
], ids=["undistorted", "plumb_bob", "equidistant", "rational_polynomial"])
def test_a_camera_info_is_the_builders_camera_info_serialized(source, frame_id: str) -> None:
    K = np.array([[200.5, 0.0, 159.5], [0.0, 201.0, 47.5], [0.0, 0.0, 1.0]])
    hdr = _header(frame_id)
    _same_message(serialized.camera_info(K, (96, 320), hdr, source),
                  builders.camera_info(K, (96, 320), hdr, source), CameraInfo)


@pytest.mark.parametrize("frame_id", FRAME_IDS)
@pytest.mark.parametrize("points", [0, 1, 257])
def test_a_flow_cloud_is_the_builders_cloud_serialized(points: int, frame_id: str) -> None:
    rng = np.random.default_rng(points)
    xyz, velocity = rng.normal(size=(points, 3)), rng.normal(size=(points, 3))
    if points > 1:
        xyz[1, 2] = np.nan      # is_dense goes false
    hdr = _header(frame_id)
    _same_message(serialized.flow_cloud(xyz, velocity, hdr), builders.flow_cloud(xyz, velocity, hdr),
                  PointCloud2)


def test_the_node_cloud_of_a_depth_and_flow_pair_round_trips() -> None:
    rng = np.random.default_rng(3)
    depth = rng.uniform(1.0, 60.0, (24, 40)).astype(np.float32)
    depth[2, 4] = np.nan     # on the stride-2 grid: left out
    flow = rng.normal(0.0, 0.2, (24, 40, 3)).astype(np.float32)
    K = np.array([[30.0, 0.0, 19.5], [0.0, 30.0, 11.5], [0.0, 0.0, 1.0]])
    xyz, velocity = scene_flow_points(depth, flow, K, 0.1, stride=2)
    cloud = deserialize_message(serialized.flow_cloud(xyz, velocity, _header("cam")), PointCloud2)
    values = np.frombuffer(bytes(cloud.data), dtype="<f4").reshape(-1, 6)
    np.testing.assert_array_equal(values, np.concatenate([xyz, velocity], axis=1))
    assert cloud.width == len(xyz) == 12 * 20 - 1 and cloud.is_dense
