"""`unified-perception synth` writes a real ROS 2 bag that rosbags opens and rclpy deserialises."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from unified_perception import topics
from unified_perception.cli import main as cli_main
from unified_perception.sim.bag_writer import CONFIG_KEY, write_bag
from unified_perception.sim.config import CameraConfig, SimConfig
from unified_perception.sim.world import SyntheticWorld

FRAMES, SEED, SIZE = 5, 3, (64, 128)


def _rclpy_class(msg_type: str):
    package, _, name = msg_type.split("/")
    module = __import__(f"{package}.msg", fromlist=[name])
    return getattr(module, name)


def _synth(out: Path, *extra: str) -> int:
    return cli_main(["synth", "--out", str(out), "--frames", str(FRAMES), "--seed", str(SEED),
                     "--size", f"{SIZE[0]}x{SIZE[1]}", "--quiet", *extra])


def _read_all(path: Path) -> dict[str, list[tuple[int, str, bytes]]]:
    out: dict[str, list[tuple[int, str, bytes]]] = {}
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        for conn, ns, raw in reader.messages():
            out.setdefault(conn.topic, []).append((ns, conn.msgtype, bytes(raw)))
    return out


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "seq"
    assert _synth(path) == 0
    return path


def test_bag_has_camera_ground_truth_and_tf_topics_with_the_listed_types(bag: Path) -> None:
    msgs = _read_all(bag)
    expected = {"/camera/image_raw": "sensor_msgs/msg/Image",
                "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
                "/tf": "tf2_msgs/msg/TFMessage", "/tf_static": "tf2_msgs/msg/TFMessage"}
    expected |= {topics.gt_topic(spec): spec.msg_type for spec in topics.GT_TOPICS}
    assert {t: m[0][1] for t, m in msgs.items()} == expected
    for topic, items in msgs.items():
        assert len(items) == (1 if topic == "/tf_static" else FRAMES), topic
        stamps = [ns for ns, _, _ in items]
        assert all(b > a for a, b in zip(stamps, stamps[1:])), topic


def test_every_message_deserialises_with_rclpy_in_the_node_encodings(bag: Path) -> None:
    msgs = _read_all(bag)
    encodings = {topics.gt_topic(s): s.encoding for s in topics.GT_TOPICS if s.encoding}
    encodings["/camera/image_raw"] = "rgb8"
    for topic, items in msgs.items():
        for ns, msg_type, raw in items:
            if msg_type.startswith("tf2_msgs/"):
                continue  # tf2_msgs has no rclpy wheel here; checked with rosbags below
            msg = deserialize_message(raw, _rclpy_class(msg_type))
            if hasattr(msg, "header"):
                assert msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec == ns
            if topic in encodings:
                assert msg.encoding == encodings[topic]
                assert (msg.height, msg.width) == SIZE
                assert msg.header.frame_id == "camera_optical_frame"
                assert len(msg.data) == msg.step * msg.height
            if msg_type == "nav_msgs/msg/Odometry":
                assert (msg.header.frame_id, msg.child_frame_id) == ("odom", "base_link")
            if msg_type == "sensor_msgs/msg/CameraInfo":
                assert msg.k[0] == pytest.approx(0.58 * SIZE[1])


def test_bag_contents_equal_the_rendered_frames(bag: Path) -> None:
    frames = [SyntheticWorld(SimConfig(seed=SEED, frames=FRAMES, time_offset_s=1_700_000_000.0,
                                       camera=CameraConfig(height=SIZE[0], width=SIZE[1]))).render(k)
              for k in (0, FRAMES - 1)]
    msgs = _read_all(bag)
    cls = _rclpy_class("sensor_msgs/msg/Image")

    def image(topic: str, k: int, dtype: str, channels: int = 1) -> np.ndarray:
        msg = deserialize_message(msgs[topic][k][2], cls)
        arr = np.frombuffer(bytes(msg.data), dtype=dtype).reshape(msg.height, msg.width, channels)
        return arr[..., 0] if channels == 1 else arr

    for k, frame in ((0, frames[0]), (FRAMES - 1, frames[1])):
        assert np.array_equal(image("/camera/image_raw", k, "u1", 3), frame.image_rgb)
        assert np.array_equal(image("/gt/depth", k, "<f4"), frame.depth_m)
        assert np.array_equal(image("/gt/semantic", k, "u1"), frame.semantic)
        assert np.array_equal(image("/gt/instances", k, "<u2"), frame.instances)
        assert np.array_equal(image("/gt/panoptic", k, "<i4"), frame.panoptic)
        assert np.array_equal(image("/gt/motion_mask", k, "u1"), frame.motion_mask * 255)
        assert np.array_equal(image("/gt/scene_flow", k, "<f4", 3), frame.scene_flow_m)
        steering = deserialize_message(msgs["/gt/steering/angle"][k][2], _rclpy_class("std_msgs/msg/Float32"))
        assert steering.data == pytest.approx(frame.steering_rad, abs=1e-6)
        odom = deserialize_message(msgs["/gt/odometry"][k][2], _rclpy_class("nav_msgs/msg/Odometry"))
        p = odom.pose.pose.position
        np.testing.assert_allclose([p.x, p.y, p.z], frame.T_odom_base[:3, 3], atol=1e-9)


def test_tf_carries_the_camera_extrinsic_and_the_odometry(bag: Path) -> None:
    store = get_typestore(Stores.ROS2_KILTED)
    msgs = _read_all(bag)
    static = store.deserialize_cdr(msgs["/tf_static"][0][2], "tf2_msgs/msg/TFMessage").transforms[0]
    assert (static.header.frame_id, static.child_frame_id) == ("base_link", "camera_optical_frame")
    assert static.transform.translation.z == pytest.approx(1.55)
    dynamic = store.deserialize_cdr(msgs["/tf"][-1][2], "tf2_msgs/msg/TFMessage").transforms[0]
    assert (dynamic.header.frame_id, dynamic.child_frame_id) == ("odom", "base_link")
    assert dynamic.transform.translation.x > 1.0  # the car drove forward


def test_a_write_that_fails_midway_leaves_no_bag_and_no_partial_folder(tmp_path: Path) -> None:
    world = SyntheticWorld(SimConfig(seed=SEED, frames=2, camera=CameraConfig(height=SIZE[0],
                                                                              width=SIZE[1])))

    def frames():
        yield world.render(0)
        raise RuntimeError("renderer failed")

    with pytest.raises(RuntimeError, match="renderer failed"):
        write_bag(tmp_path / "broken", frames(), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_same_seed_gives_identical_image_bytes_and_config_is_in_metadata(bag: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert _synth(again, "--storage", "sqlite3") == 0
    a = [raw for _, _, raw in _read_all(bag)["/camera/image_raw"]]
    b = [raw for _, _, raw in _read_all(again)["/camera/image_raw"]]
    assert a == b
    assert sorted(f.name for f in bag.iterdir()) == ["metadata.yaml", "seq_0.mcap"]
    assert sorted(f.name for f in again.iterdir()) == ["again_0.db3", "metadata.yaml"]
    assert CONFIG_KEY in (again / "metadata.yaml").read_text()


def test_existing_output_or_bad_size_gives_one_clear_message(bag: Path, capsys) -> None:
    assert _synth(bag) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli_main(["synth", "--out", str(bag) + "_x", "--size", "64by128", "--quiet"]) == 2
    assert "HxW" in capsys.readouterr().err


def test_a_sequence_too_long_for_panoptic_ids_fails_before_writing_anything(tmp_path: Path,
                                                                             capsys) -> None:
    out = tmp_path / "long"
    assert cli_main(["synth", "--out", str(out), "--frames", "4000", "--quiet"]) == 2
    assert "fewer frames" in capsys.readouterr().err
    assert not out.exists()
