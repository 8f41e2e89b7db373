"""CameraInfo handling and the scene-flow cloud layout shared by both message libraries: the node
(rclpy, ros/builders.py) and offline replay / the synthetic world (rosbags, bag_messages.py) derive
the outputs' intrinsics and lay out depth/camera_info and scene_flow/points the same way."""

from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo

from unified_perception import bag_messages
from unified_perception.contract import ModelMetadata
from unified_perception.ros import builders
from unified_perception.runtime.camera_info import (
    CameraIntrinsics, camera_info_fields, camera_info_problem, output_intrinsics)
from unified_perception.runtime.preprocess import intrinsics_from_normalized, scale_intrinsics
from unified_perception.runtime.scene_flow import FLOW_CLOUD_FIELDS, pack_flow_cloud

K_720P = np.array([[1000.0, 0.0, 639.5], [0.0, 1000.0, 359.5], [0.0, 0.0, 1.0]])
DISTORTION = ("rational_polynomial", [-0.3, 0.1, 0.001, 0.002, 0.0, 0.01, 0.0, 0.0])


def _metadata() -> ModelMetadata:
    return ModelMetadata(contract_version="1.0", tasks=(), input_height=64, input_width=128,
                         intrinsics_normalized=(0.58, 1.92, 0.5, 0.5), depth_min_m=0.1,
                         depth_max_m=100.0)


def _infos(K: np.ndarray, height: int, width: int) -> list:
    """The same CameraInfo from rclpy and from rosbags."""
    rclpy_info = CameraInfo(height=height, width=width, distortion_model=DISTORTION[0],
                            d=DISTORTION[1], k=K.reshape(-1).tolist())
    rosbags_info = bag_messages.camera_info(K, height, width, 0, "cam", rclpy_info)
    return [rclpy_info, rosbags_info]


@pytest.mark.parametrize("library", [0, 1], ids=["rclpy", "rosbags"])
def test_output_intrinsics_scale_a_calibration_of_either_library_to_the_model_size(library) -> None:
    info = _infos(K_720P, 720, 1280)[library]
    K = output_intrinsics(info, (720, 1280), (64, 128), _metadata())
    np.testing.assert_allclose(K, scale_intrinsics(K_720P, (720, 1280), (64, 128)))
    # calibrated at 720p, the image arrives at 360p: the calibration size wins
    np.testing.assert_allclose(output_intrinsics(info, (360, 640), (64, 128), _metadata()), K)


def test_a_missing_zero_or_refused_calibration_falls_back_to_the_training_intrinsics() -> None:
    training = intrinsics_from_normalized(_metadata().intrinsics_normalized, (64, 128))
    zero = CameraInfo(height=720, width=1280)
    square = CameraInfo(height=720, width=720, k=K_720P.reshape(-1).tolist())
    for info in (None, zero, square):
        np.testing.assert_allclose(output_intrinsics(info, (720, 1280), (64, 128), _metadata()),
                                   training)
    assert camera_info_problem(None, (720, 1280)) == camera_info_problem(zero, (720, 1280)) == ""
    assert "another aspect ratio" in camera_info_problem(square, (720, 1280))
    unsized = CameraInfo(k=K_720P.reshape(-1).tolist())     # 0 x 0: calibrated at the image size
    np.testing.assert_allclose(output_intrinsics(unsized, (720, 1280), (64, 128), _metadata()),
                               scale_intrinsics(K_720P, (720, 1280), (64, 128)))


def test_output_camera_info_fields_keep_the_source_distortion_and_put_k_into_p() -> None:
    K = np.array([[100.0, 0, 63.5], [0, 88.9, 31.5], [0, 0, 1]])
    for source in _infos(K_720P, 720, 1280):
        fields = camera_info_fields(K, source)
        assert fields.distortion_model == DISTORTION[0]
        np.testing.assert_array_equal(fields.d, DISTORTION[1])
        np.testing.assert_array_equal(fields.p.reshape(3, 4), np.hstack([K, np.zeros((3, 1))]))
        np.testing.assert_array_equal(fields.r, np.eye(3).reshape(-1))
    plain = camera_info_fields(K)
    assert plain.distortion_model == "plumb_bob" and plain.d.tolist() == [0.0] * 5


def test_both_libraries_write_the_same_depth_camera_info() -> None:
    K = np.array([[100.0, 0, 63.5], [0, 88.9, 31.5], [0, 0, 1]])
    source = _infos(K_720P, 720, 1280)[0]
    ros = builders.camera_info(K, (64, 128), builders.header(builders.s_to_stamp(1.0), "cam"), source)
    bag = bag_messages.camera_info(K, 64, 128, 1_000_000_000, "cam", source)
    for name in ("height", "width", "distortion_model"):
        assert getattr(ros, name) == getattr(bag, name), name
    for name in ("d", "k", "r", "p"):
        np.testing.assert_array_equal(np.asarray(getattr(ros, name)), getattr(bag, name), name)


def test_the_flow_cloud_is_six_little_endian_float32_fields_in_both_libraries() -> None:
    xyz = np.arange(12, dtype=np.float32).reshape(4, 3)
    velocity = -xyz
    velocity[2, 1] = np.nan
    packed = pack_flow_cloud(xyz, velocity)
    assert (packed.width, packed.point_step, packed.row_step) == (4, 24, 96)
    assert packed.offsets == (0, 4, 8, 12, 16, 20) and not packed.is_dense
    values = np.frombuffer(packed.data, "<f4").reshape(4, 6)
    np.testing.assert_array_equal(values, np.hstack([xyz, velocity]))
    ros = builders.flow_cloud(xyz, velocity, builders.header(builders.s_to_stamp(1.0), "cam"))
    bag = bag_messages.flow_cloud(xyz, velocity, 1_000_000_000, "cam")
    for cloud in (ros, bag):
        assert [(f.name, f.offset, f.datatype) for f in cloud.fields] == [
            (n, o, 7) for n, o in zip(FLOW_CLOUD_FIELDS, packed.offsets)]   # 7 = FLOAT32
        assert (cloud.width, cloud.point_step, cloud.row_step, cloud.is_dense) == (4, 24, 96, False)
        assert bytes(cloud.data) == packed.data


def test_the_per_camera_intrinsics_follow_a_changed_calibration_or_image_size() -> None:
    intrinsics = CameraIntrinsics((64, 128), _metadata())
    info = CameraInfo(height=720, width=1280, k=K_720P.reshape(-1).tolist())
    K, problem = intrinsics.get(info, (720, 1280))
    np.testing.assert_allclose(K, output_intrinsics(info, (720, 1280), (64, 128), _metadata()))
    assert problem == "" and not K.flags.writeable      # shared between frames: read-only
    assert intrinsics.get(info, (720, 1280))[0] is K     # same calibration: not worked out again
    info.k[0] = 900.0                                   # a new calibration in the same message
    np.testing.assert_allclose(intrinsics.get(info, (720, 1280))[0],
                               output_intrinsics(info, (720, 1280), (64, 128), _metadata()))
    K_square, problem = intrinsics.get(info, (720, 720))   # the image size changed
    assert "another aspect ratio" in problem
    np.testing.assert_allclose(K_square, intrinsics_from_normalized(_metadata().intrinsics_normalized,
                                                                    (64, 128)))
    K_none, problem = intrinsics.get(None, (720, 1280))     # no CameraInfo: training intrinsics
    assert problem == ""
    np.testing.assert_allclose(K_none, K_square)
