"""`unified-perception replay` in-process: a tiny synthetic bag through the tiny exported model.

The prediction bag is read back with rosbags' AnyReader and every message is deserialised with
rclpy, as RViz / ros2 bag play would see it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import deserialize_message

from model_helpers import with_contract_version
from replay_helpers import FRAMES, SIZE, key_values, rclpy_class, read_bag, synth
from unified_perception import bag_messages, topics
from unified_perception.bag_output import bag_writer
from unified_perception.cli import main as cli_main

CAMERA = "camera"
SINGLE_FRAME = {          # published for every frame
    "/camera/depth": "sensor_msgs/msg/Image", "/camera/depth/camera_info": "sensor_msgs/msg/CameraInfo",
    "/camera/semantic": "sensor_msgs/msg/Image", "/camera/semantic/color": "sensor_msgs/msg/Image",
    "/camera/instances": "sensor_msgs/msg/Image", "/camera/panoptic": "sensor_msgs/msg/Image",
    "/steering/angle": "std_msgs/msg/Float32", "/steering/marker": "visualization_msgs/msg/Marker",
    "/replay/latency": "diagnostic_msgs/msg/DiagnosticArray"}
TWO_FRAME = {             # only from a valid frame pair: every frame but the first
    "/camera/motion_mask": "sensor_msgs/msg/Image", "/camera/scene_flow": "sensor_msgs/msg/Image",
    "/camera/scene_flow/points": "sensor_msgs/msg/PointCloud2", "/odometry": "nav_msgs/msg/Odometry"}
ENCODINGS = {f"/{CAMERA}/{spec.name}": spec.encoding for spec in topics.OUTPUT_TOPICS if spec.encoding}


def _replay(bag: Path, model: Path, out: Path, *extra: str) -> int:
    return cli_main(["replay", str(bag), "--model", str(model), "--out", str(out), "--quiet", *extra])


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth(tmp_path_factory.mktemp("replay_in") / "drive")


@pytest.fixture(scope="module")
def prediction(bag: Path, tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("replay_out") / "pred"
    assert _replay(bag, tiny_model_path, out) == 0
    return out


def _camera_stamps(bag: Path) -> list[int]:
    return [ns for ns, _, _ in read_bag(bag)["/camera/image_raw"]]


def test_the_prediction_bag_is_laid_out_as_ros2_bag_record_writes_it(prediction: Path) -> None:
    assert sorted(p.name for p in prediction.iterdir()) == ["metadata.yaml", "pred_0.mcap"]
    assert not [p for p in prediction.parent.iterdir() if p.name.startswith(".")]


def test_one_message_per_output_topic_per_camera_frame_with_the_node_types_and_stamps(
        bag: Path, prediction: Path) -> None:
    stamps = _camera_stamps(bag)
    messages = read_bag(prediction)
    expected = {**SINGLE_FRAME, **TWO_FRAME, "/replay/summary": "diagnostic_msgs/msg/DiagnosticArray"}
    assert {topic: items[0][1] for topic, items in messages.items()} == expected
    for topic in SINGLE_FRAME:
        assert [ns for ns, _, _ in messages[topic]] == stamps, topic
    for topic in TWO_FRAME:
        assert [ns for ns, _, _ in messages[topic]] == stamps[1:], topic
    summary = deserialize_message(messages["/replay/summary"][0][2],
                                  rclpy_class("diagnostic_msgs/msg/DiagnosticArray"))
    assert summary.status[0].name == "replay"
    outputs = {topic.removeprefix("/camera/").lstrip("/"): str(len(messages[topic]))
               for topic in [*SINGLE_FRAME, *TWO_FRAME] if topic != "/replay/latency"}
    assert {k: v for k, v in key_values(summary).items() if k != "model"} == {
        "frames_in": str(FRAMES), "frames_out": str(FRAMES), "dropped": "0", "mode": "offline",
        "rate": "n/a", **{f"output {name}": n for name, n in outputs.items()}}


def test_every_message_deserialises_with_rclpy_stamped_with_its_camera_frame(prediction: Path) -> None:
    for topic, items in read_bag(prediction).items():
        for ns, msg_type, raw in items:
            msg = deserialize_message(raw, rclpy_class(msg_type))
            if hasattr(msg, "header"):
                assert msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec == ns, topic
            if topic in ENCODINGS:
                assert msg.encoding == ENCODINGS[topic]
                assert (msg.height, msg.width) == SIZE
                assert len(msg.data) == msg.step * msg.height
                assert msg.header.frame_id == topics.SIM_OPTICAL_FRAME
            if topic == "/replay/latency":
                values = key_values(msg)
                assert msg.status[0].name == "replay" and values["mode"] == "offline"
                assert float(values["latency_ms"]) > 0.0
            if msg_type == "nav_msgs/msg/Odometry":
                assert (msg.header.frame_id, msg.child_frame_id) == ("odom", "base_link")
            if msg_type == "sensor_msgs/msg/PointCloud2":
                assert [f.name for f in msg.fields] == ["x", "y", "z", "vx", "vy", "vz"]
                assert len(msg.data) == msg.row_step > 0


def test_replay_is_deterministic_and_reads_sqlite3_bags(bag: Path, prediction: Path,
                                                         tiny_model_path: Path, tmp_path: Path) -> None:
    again_in = synth(tmp_path / "drive_db3", "--storage", "sqlite3")
    assert _replay(again_in, tiny_model_path, tmp_path / "again") == 0
    first, second = read_bag(prediction), read_bag(tmp_path / "again")
    for topic in (*SINGLE_FRAME, *TWO_FRAME):
        if topic != "/replay/latency":
            assert [raw for _, _, raw in first[topic]] == [raw for _, _, raw in second[topic]], topic


def test_a_bag_with_ground_truth_gets_an_evaluation_report_next_to_the_predictions(
        prediction: Path) -> None:
    pytest.importorskip("unified_perception.eval.evaluate")
    report = Path(f"{prediction}_report")
    assert (report / "metrics.json").is_file()


def _assert_one_clear_error(capsys: pytest.CaptureFixture, *words: str) -> None:
    err = capsys.readouterr().err.strip()
    assert err.startswith("unified-perception replay: ") and "\n" not in err, err
    for word in words:
        assert word in err, err


def test_a_corrupt_bag_gives_one_clear_message_and_no_output(bag: Path, tiny_model_path: Path,
                                                             tmp_path: Path, capsys) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(bag, broken)
    storage = broken / "drive_0.mcap"
    storage.write_bytes(storage.read_bytes()[: storage.stat().st_size // 2])
    assert _replay(broken, tiny_model_path, tmp_path / "out") == 2
    _assert_one_clear_error(capsys, str(broken))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]


def test_a_message_that_does_not_deserialise_midway_leaves_no_prediction_bag(
        bag: Path, tiny_model_path: Path, tmp_path: Path, capsys) -> None:
    broken = tmp_path / "midway"
    with bag_writer(broken) as writer:
        conns = {}
        for topic, items in read_bag(bag).items():
            conns[topic] = writer.add_connection(topic, items[0][1], typestore=bag_messages.TYPESTORE)
            for k, (ns, _, raw) in enumerate(items):
                bad = topic == "/camera/image_raw" and k == 3
                writer.write(conns[topic], ns, raw[:12] if bad else raw)
    assert _replay(broken, tiny_model_path, tmp_path / "out") == 2
    _assert_one_clear_error(capsys, "past frame 3", "corrupt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["midway"]


def test_a_bag_without_the_camera_topic_names_the_topics_it_has(bag: Path, tiny_model_path: Path,
                                                                tmp_path: Path, capsys) -> None:
    topic_map = tmp_path / "topics.yaml"
    topic_map.write_text("image: /front/image_raw\n")
    assert _replay(bag, tiny_model_path, tmp_path / "out", "--topics", str(topic_map)) == 2
    _assert_one_clear_error(capsys, "/front/image_raw", "/camera/image_raw (sensor_msgs/msg/Image)",
                            "--topics")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["topics.yaml"]


@pytest.mark.parametrize("live", [False, True])
def test_a_model_that_is_missing_or_not_onnx_is_refused_before_anything_is_written(
        bag: Path, tmp_path: Path, capsys, live: bool) -> None:
    flag = ["--live"] if live else []
    assert _replay(bag, tmp_path / "missing.onnx", tmp_path / "out", *flag) == 2
    _assert_one_clear_error(capsys, "missing.onnx' is not a file", "unified-perception export")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.random.default_rng(0).bytes(256))
    assert _replay(bag, garbage, tmp_path / "out", *flag) == 2
    _assert_one_clear_error(capsys, "cannot load", "Re-export")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.onnx"]


def test_a_model_outside_the_contract_is_refused_naming_the_problem(bag: Path, tiny_model_path: Path,
                                                                    tmp_path: Path, capsys) -> None:
    other = with_contract_version(tiny_model_path, tmp_path / "other_contract.onnx", "1.0")
    assert _replay(bag, other, tmp_path / "out") == 2
    _assert_one_clear_error(capsys, "contract version is 1.0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other_contract.onnx"]


def _with_marked_frame(bag: Path, out: Path, index: int, corner: int) -> Path:
    """``bag`` rewritten with camera frame ``index`` marked by ``corner`` (see fault_helpers)."""
    from fault_helpers import frame_with_corner

    with bag_writer(out) as writer:
        for topic, items in read_bag(bag).items():
            conn = writer.add_connection(topic, items[0][1], typestore=bag_messages.TYPESTORE)
            for k, (ns, msg_type, raw) in enumerate(items):
                if topic == f"/{CAMERA}/image_raw" and k == index:
                    msg = bag_messages.TYPESTORE.deserialize_cdr(raw, msg_type)
                    assert msg.encoding == "rgb8" and msg.step == 3 * msg.width
                    rgb = msg.data.reshape(msg.height, msg.width, 3)
                    msg.data = frame_with_corner(rgb, corner).reshape(-1)
                    raw = bag_messages.serialize(msg)
                writer.write(conn, ns, raw)
    return out


@pytest.mark.parametrize("corner", ["nan", "inf"])
def test_a_frame_with_non_finite_outputs_writes_nothing_is_dropped_and_pairs_restart(
        bag: Path, tiny_model_path: Path, tmp_path: Path, capsys, corner: str) -> None:
    import json

    from fault_helpers import INF_CORNER, NAN_CORNER, poisoned_model

    model = poisoned_model(tiny_model_path, tmp_path / "poisoned.onnx")
    marked = _with_marked_frame(bag, tmp_path / "marked", 2,
                                NAN_CORNER if corner == "nan" else INF_CORNER)
    assert _replay(marked, model, tmp_path / "pred") == 0
    assert "frame 2 is dropped: model outputs not finite (depth" in capsys.readouterr().err
    stamps, messages = _camera_stamps(bag), read_bag(tmp_path / "pred")
    kept = stamps[:2] + stamps[3:]
    for topic in SINGLE_FRAME:
        assert [ns for ns, _, _ in messages[topic]] == kept, topic
    for topic in TWO_FRAME:     # frame 3 starts afresh: the state frame 2 wrote is not trusted
        assert [ns for ns, _, _ in messages[topic]] == [stamps[1], *stamps[4:]], topic
    for topic in ("/steering/angle", "/odometry"):
        for _, msg_type, raw in messages[topic]:
            msg = deserialize_message(raw, rclpy_class(msg_type))
            values = [msg.data] if topic == "/steering/angle" else [
                msg.pose.pose.position.x, msg.pose.pose.position.y, msg.pose.pose.position.z]
            assert np.isfinite(values).all(), topic
    summary = deserialize_message(messages["/replay/summary"][0][2],
                                  rclpy_class("diagnostic_msgs/msg/DiagnosticArray"))
    assert {k: key_values(summary)[k] for k in ("frames_in", "frames_out", "dropped")} == {
        "frames_in": str(FRAMES), "frames_out": str(FRAMES - 1), "dropped": "1"}
    metrics = json.loads((tmp_path / "pred_report" / "metrics.json").read_text())
    per_output = metrics["frames"].pop("per_output")
    assert metrics["frames"] == {"in": FRAMES, "out": FRAMES - 1, "dropped": 1}
    assert (per_output["semantic"], per_output["motion_mask"]) == (FRAMES - 1, FRAMES - 3)
    # the restarted pair is no loss: the report names no output as short
    assert "frames only" not in (tmp_path / "pred_report" / "summary.md").read_text()
