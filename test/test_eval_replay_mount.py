"""Replay mounts the camera where the input bag records it (its /tf_static), not where the params say.

The odometry the node publishes is base_link's: ``T_base_cam`` turns the network's camera motion
into base motion, so a mounting other than the recording's tilts and shifts every pose. The
synthetic bags record the synthetic world's mounting (1.6 m forward, 1.55 m up, pitched down
0.02 rad) on /tf_static, where config/car.yaml says (1.5, 0, 1.4), level.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import deserialize_message

from replay_helpers import rclpy_class, read_bag, synth
from unified_perception.cli import main as cli_main
from unified_perception.eval.replay_input import InputBag, mount_as_recorded
from unified_perception.eval.replay_settings import load_settings
from unified_perception.runtime.odometry import camera_to_base_extrinsic
from unified_perception.sim.config import CameraConfig
from unified_perception.transforms import matrix_to_rpy, rpy_to_matrix

SIM = CameraConfig()
SIM_MOUNT_XYZ = (SIM.mount_x_m, SIM.mount_y_m, SIM.mount_z_m)


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth(tmp_path_factory.mktemp("mount") / "drive")


def test_matrix_to_rpy_inverts_rpy_to_matrix_everywhere_but_gimbal_lock() -> None:
    rng = np.random.default_rng(0)
    for roll, pitch, yaw in rng.uniform([-3.1, -1.5, -3.1], [3.1, 1.5, 3.1], (200, 3)):
        assert np.allclose(matrix_to_rpy(rpy_to_matrix(roll, pitch, yaw)), (roll, pitch, yaw), atol=1e-9)
    locked = rpy_to_matrix(0.3, np.pi / 2, -0.2)           # only roll - yaw is defined there
    assert np.allclose(rpy_to_matrix(*matrix_to_rpy(locked)), locked, atol=1e-9)


def test_the_bag_mounting_is_read_from_its_static_transforms(bag: Path) -> None:
    with InputBag(bag) as source:
        T_base_cam, where = source.camera_mount("base_link")
        assert where.startswith("/tf_static of the bag (base_link -> ")
        assert source.camera_mount("no_such_frame") is None
    assert np.allclose(T_base_cam[:3, 3], SIM_MOUNT_XYZ)
    optical_z_in_base = T_base_cam[:3, 2]                  # looks forward, tilted down by the pitch
    assert np.allclose(optical_z_in_base, [np.cos(SIM.pitch_rad), 0.0, -np.sin(SIM.pitch_rad)])


def test_the_replay_settings_take_the_bag_mounting_as_the_node_params_would_hold_it(
        bag: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = load_settings(None)
    with InputBag(bag) as source:
        mounted = mount_as_recorded(params, source)
        T_bag, _ = source.camera_mount(params.base_frame_id)
    assert np.allclose(mounted.camera_to_base_xyz, SIM_MOUNT_XYZ)
    assert np.allclose(mounted.camera_to_base_rpy, (0.0, SIM.pitch_rad, 0.0))
    assert np.allclose(mounted.T_base_cam(), T_bag)
    assert np.allclose(mounted.T_base_cam(), camera_to_base_extrinsic(SIM_MOUNT_XYZ, (0.0, SIM.pitch_rad, 0.0)))
    assert not np.allclose(params.T_base_cam(), T_bag)     # config/car.yaml's mounting differs
    assert "camera mounting from /tf_static of the bag" in capsys.readouterr().out


def test_without_a_static_transform_the_params_mounting_stays_and_the_replay_says_so(
        bag: Path, tmp_path: Path) -> None:
    no_tf = tmp_path / "no_tf.yaml"
    no_tf.write_text("tf_static: null\n")
    lines: list[str] = []
    params = load_settings(None)
    with InputBag(bag, no_tf) as source:
        assert source.camera_mount("base_link") is None
        assert mount_as_recorded(params, source, lines.append) == params
    assert len(lines) == 1 and "from the params" in lines[0] and "no static transform" in lines[0]


def test_a_topic_map_mounting_wins_over_the_bag(bag: Path, tmp_path: Path) -> None:
    given = camera_to_base_extrinsic((2.0, 0.1, 1.2), (0.0, 0.05, 0.01))
    topic_map = tmp_path / "mounted.yaml"
    topic_map.write_text("T_base_cam: " + str(given.tolist()) + "\n")
    with InputBag(bag, topic_map) as source:
        T, where = source.camera_mount("base_link")
    assert np.allclose(T, given) and where == "T_base_cam of the topic map"


def _odometry_z(prediction: Path) -> np.ndarray:
    cls = rclpy_class("nav_msgs/msg/Odometry")
    return np.array([deserialize_message(raw, cls).pose.pose.position.z
                     for _, _, raw in read_bag(prediction)["/odometry"]])


def test_replay_odometry_depends_on_the_mounting_and_params_mode_keeps_the_params(
        bag: Path, tiny_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = [str(bag), "--model", str(tiny_model_path), "--quiet", "--no-figures"]
    assert cli_main(["replay", *common, "--out", str(tmp_path / "bag")]) == 0
    assert "camera mounting from /tf_static" in capsys.readouterr().out
    assert cli_main(["replay", *common, "--out", str(tmp_path / "params"), "--camera-mount", "params"]) == 0
    assert "camera mounting" not in capsys.readouterr().out
    # The same camera motion seen through two mountings: the base poses differ.
    assert not np.allclose(_odometry_z(tmp_path / "bag"), _odometry_z(tmp_path / "params"))
