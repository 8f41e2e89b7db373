"""The lifecycle node on real rclpy over Fast DDS with the tiny exported model.

One node runs for the whole module (started in-process, autostart); a test node publishes camera
frames + camera_info and records every output topic; lifecycle and parameter requests go through
the node's standard services, as `ros2 lifecycle` / `ros2 param` would send them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime as ort
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from nav_msgs.msg import Odometry, Path as PathMsg
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Float32
from visualization_msgs.msg import Marker

from conftest import TINY_HEIGHT, TINY_WIDTH
from ros_helpers import (CameraFeed, Recorder, RosSession, call, camera_info, rgb_image, stamp_now,
                         wait_until)
from unified_perception import topics
from unified_perception.contract import ModelMetadata
from unified_perception.ros.node import NODE_NAME, PerceptionNode, autostart
from unified_perception.runtime.image_codec import decode_array
from unified_perception.runtime.preprocess import scale_intrinsics
from unified_perception.runtime.stats import FRAME_STAGES

CAMERA = "front"
OPTICAL_FRAME = "front_camera_optical_frame"
IN_H, IN_W = 96, 160           # camera size; the model runs at 64x128
MAX_ANGLE = 0.02              # below what this module's tiny model asks for (0.05 rad and more)
ASKED_ANGLE = 0.05

PER_CAMERA = {
    "depth": Image, "depth/camera_info": CameraInfo, "semantic": Image, "semantic/color": Image,
    "instances": Image, "panoptic": Image, "motion_mask": Image, "scene_flow": Image,
    "scene_flow/points": PointCloud2}
VEHICLE = {"odometry": Odometry, "path": PathMsg, "steering/angle": Float32,
           "steering/marker": Marker, "/diagnostics": DiagnosticArray}
ALL_TOPICS = {**{f"{CAMERA}/{k}": v for k, v in PER_CAMERA.items()}, **VEHICLE}
STAMPED = [t for t in ALL_TOPICS if t != "steering/angle"]


def _frame(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (IN_H, IN_W, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random model with its steering output biased to ASKED_ANGLE, so every frame asks
    for more than the node's angle limit whatever the random weights give."""
    import torch

    from unified_perception.train.export import export_model
    from unified_perception.train.model import build_unified_model

    model = build_unified_model("resnet18", input_height=TINY_HEIGHT, input_width=TINY_WIDTH,
                                seed=0, preset="light")
    with torch.no_grad():
        model.steering.out[-1].bias.fill_(ASKED_ANGLE)
        model.steering.out[-1].weight.mul_(0.01)
    return export_model(model, tmp_path_factory.mktemp("steering_model") / "tiny_unified.onnx")


@pytest.fixture(scope="module")
def setup(tiny_model_path: Path):
    session = RosSession()
    node = PerceptionNode(context=session.context, parameter_overrides=[
        Parameter("model_path", value=str(tiny_model_path)),
        Parameter("providers", value=["cpu"]),
        Parameter("warmup_runs", value=0),
        Parameter("optical_frame_ids", value=[OPTICAL_FRAME]),
        Parameter("diagnostics_period_s", value=0.2),
        Parameter("max_gap_s", value=5.0),
        # The path with every frame, so that each frame's outputs can be checked (the rate
        # limit of the default 0.5 s is tested in test_ros_vehicle.py).
        Parameter("path_period_s", value=0.0),
        Parameter("steering.max_angle_rad", value=MAX_ANGLE),
        Parameter("steering.stale_timeout_s", value=5.0)])
    assert autostart(node)
    session.add(node)
    tester = session.add(Node("tester", context=session.context))
    recorder = Recorder(tester, ALL_TOPICS.items())
    feed = CameraFeed(tester, CAMERA)
    feed.wait_connected()
    yield session, node, tester, recorder, feed
    session.close()


class Harness:
    """Sends one frame and waits until its outputs arrived."""

    def __init__(self, setup) -> None:
        self.session, self.node, self.tester, self.recorder, self.feed = setup
        self.seed = 0
        self.sent_stamps: list = []

    def send(self, image: Image | None = None) -> Image:
        self.seed += 1
        msg = image or rgb_image(_frame(self.seed), stamp_now(self.tester), "camera_driver_frame")
        self.sent_stamps.append(msg.header.stamp)
        self.feed.send(msg, camera_info(IN_W, IN_H, "camera_driver_frame"))
        return msg

    def send_and_wait(self, topic: str = f"{CAMERA}/depth") -> Image:
        """Send a valid frame; resend (a best-effort frame may be lost) until ``topic`` has it."""
        for _ in range(20):
            msg = self.send()
            try:
                self.recorder.wait_for(topic, lambda m: m.header.stamp == msg.header.stamp, 1.5)
                return msg
            except AssertionError:
                continue
        raise AssertionError(f"no output on {topic} for 20 frames")

    def output(self, topic: str, sent: Image):
        """The message on ``topic`` stamped like ``sent`` (outputs of one frame arrive in turn)."""
        return self.recorder.wait_for(topic, lambda m: m.header.stamp == sent.header.stamp, 5.0)

    def service(self, srv_type, name: str, request):
        return call(self.tester, srv_type, f"/{NODE_NAME}/{name}", request)


@pytest.fixture(scope="module")
def harness(setup) -> Harness:
    return Harness(setup)


def _metadata(model: Path) -> ModelMetadata:
    props = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]) \
        .get_modelmeta().custom_metadata_map
    return ModelMetadata.from_props(props)


def test_every_output_topic_arrives_with_type_encoding_size_frame_and_input_stamp(
        harness: Harness, tiny_model_path: Path) -> None:
    meta = _metadata(tiny_model_path)
    h, w = meta.input_height, meta.input_width
    sent = [harness.send_and_wait() for _ in range(4)]
    stamps = {(t.sec, t.nanosec) for t in harness.sent_stamps}
    rec = harness.recorder
    for topic in ALL_TOPICS:
        rec.wait_for(topic, timeout_s=10.0)
    for topic in STAMPED:
        if topic == "/diagnostics":
            continue
        harness.output(topic, sent[-1])  # every output carries the input stamp
        for msg in rec.messages(topic):
            assert (msg.header.stamp.sec, msg.header.stamp.nanosec) in stamps, topic
    encodings = {"depth": "32FC1", "semantic": "mono8", "semantic/color": "rgb8",
                 "instances": "16UC1", "panoptic": "32SC1", "motion_mask": "mono8",
                 "scene_flow": "32FC3"}
    for name, encoding in encodings.items():
        assert encoding == next(s.encoding for s in topics.OUTPUT_TOPICS if s.name == name)
        msg = harness.output(f"{CAMERA}/{name}", sent[-1])
        assert (msg.encoding, msg.height, msg.width) == (encoding, h, w), name
        assert msg.header.frame_id == OPTICAL_FRAME, name
        decode_array(msg)  # step and data length consistent with the encoding

    info = harness.output(f"{CAMERA}/depth/camera_info", sent[-1])
    assert (info.height, info.width, info.header.frame_id) == (h, w, OPTICAL_FRAME)
    K_in = np.asarray(camera_info(IN_W, IN_H, "x").k).reshape(3, 3)
    np.testing.assert_allclose(np.asarray(info.k).reshape(3, 3),
                               scale_intrinsics(K_in, (IN_H, IN_W), (h, w)))

    cloud = harness.output(f"{CAMERA}/scene_flow/points", sent[-1])
    assert [(f.name, f.offset, f.datatype) for f in cloud.fields] == [
        (n, 4 * i, PointField.FLOAT32) for i, n in enumerate(("x", "y", "z", "vx", "vy", "vz"))]
    assert cloud.header.frame_id == OPTICAL_FRAME and cloud.point_step == 24 and cloud.width > 0
    points = np.frombuffer(bytes(cloud.data), "<f4").reshape(-1, 6)
    assert np.isfinite(points).all() and (points[:, 2] > 0).all()

    odom = harness.output("odometry", sent[-1])
    assert (odom.header.frame_id, odom.child_frame_id) == ("odom", "base_link")
    marker = harness.output("steering/marker", sent[-1])
    assert marker.header.frame_id == "base_link" and marker.type == Marker.ARROW


def test_depth_is_in_metres_within_the_model_range(harness: Harness, tiny_model_path: Path) -> None:
    meta = _metadata(tiny_model_path)
    msg = harness.send_and_wait()
    depth = decode_array(harness.output(f"{CAMERA}/depth", msg))
    assert depth.dtype == np.float32 and np.isfinite(depth).all()
    assert depth.min() >= meta.depth_min_m - 1e-4 and depth.max() <= meta.depth_max_m + 1e-4
    panoptic = decode_array(harness.output(f"{CAMERA}/panoptic", msg))
    semantic = decode_array(harness.output(f"{CAMERA}/semantic", msg))
    np.testing.assert_array_equal(panoptic // 1000, semantic)


def test_odometry_integrates_and_the_path_grows(harness: Harness) -> None:
    harness.recorder.clear()            # only this test's frames: the first may have no pair
    for _ in range(5):
        sent = harness.send_and_wait()
    harness.output("odometry", sent)
    harness.output("path", sent)
    odoms = harness.recorder.messages("odometry")
    positions = np.array([[o.pose.pose.position.x, o.pose.pose.position.y,
                           o.pose.pose.position.z] for o in odoms])
    assert len(odoms) >= 4
    assert np.linalg.norm(np.diff(positions, axis=0), axis=1).max() > 0, "the pose never moved"
    for o in odoms:
        q = o.pose.pose.orientation
        assert math.isclose(q.x ** 2 + q.y ** 2 + q.z ** 2 + q.w ** 2, 1.0, rel_tol=1e-6)
    paths = harness.recorder.messages("path")
    assert len(paths[-1].poses) > len(paths[0].poses)
    assert paths[-1].header.frame_id == "odom"
    last = paths[-1].poses[-1].pose.position
    assert any(math.isclose(last.x, p[0]) and math.isclose(last.z, p[2]) for p in positions)


def test_steering_of_its_own_frames_is_clamped_to_the_angle_limit(harness: Harness) -> None:
    """The model asks for more than MAX_ANGLE: the commands of these frames reach the limit and
    never pass it (no frames of earlier tests are looked at)."""
    harness.recorder.clear()
    for _ in range(4):
        harness.send_and_wait()
    wait_until(lambda: len(harness.recorder.messages("steering/angle")) >= 4, 5.0,
               "a steering command for each frame")
    angles = [m.data for m in harness.recorder.messages("steering/angle")]
    assert all(math.isfinite(a) and abs(a) <= MAX_ANGLE + 1e-6 for a in angles), angles
    assert max(abs(a) for a in angles) > 0.5 * MAX_ANGLE, f"the limit was never reached: {angles}"


def _set(harness: Harness, name: str, value) -> tuple[bool, str]:
    param = Parameter(name, value=value).to_parameter_msg()
    response = harness.service(SetParameters, "set_parameters",
                               SetParameters.Request(parameters=[param]))
    return response.results[0].successful, response.results[0].reason


def _get(harness: Harness, name: str):
    response = harness.service(GetParameters, "get_parameters",
                               GetParameters.Request(names=[name]))
    return Parameter.from_parameter_msg(ParameterMsg(name=name, value=response.values[0])).value


def test_a_valid_parameter_change_takes_effect(harness: Harness) -> None:
    for threshold, expected in ((0.0, 255), (1.0, 0)):
        assert _set(harness, "motion_threshold", threshold) == (True, "")
        assert _get(harness, "motion_threshold") == threshold
        msg = harness.send_and_wait()
        mask = decode_array(harness.output(f"{CAMERA}/motion_mask", msg))
        assert (mask == expected).all()
    assert _set(harness, "steering.max_angle_rad", 0.01)[0]
    harness.recorder.clear()
    for _ in range(3):
        harness.send_and_wait()
    assert all(abs(m.data) <= 0.01 + 1e-6 for m in harness.recorder.messages("steering/angle"))
    assert _set(harness, "steering.max_angle_rad", MAX_ANGLE)[0]
    assert _set(harness, "motion_threshold", 0.5)[0]


@pytest.mark.parametrize("name,value,reason", [
    ("motion_threshold", 1.5, "out of range"),
    ("steering.max_rate_rad_s", -1.0, "out of range"),
    ("steering.max_angle_rad", float("nan"), "out of range|finite"),
    ("pointcloud_stride", 0, "out of range|must be within"),
    ("motion_threshold", "high", "type"),
    ("model_path", "/elsewhere.onnx", "read-only"),
])
def test_an_invalid_parameter_is_rejected_with_a_reason_and_the_old_value_kept(
        harness: Harness, name: str, value, reason: str) -> None:
    import re

    before = _get(harness, name)
    ok, why = _set(harness, name, value)
    assert not ok and re.search(reason, why, re.IGNORECASE), why
    after = _get(harness, name)
    assert after == before or (isinstance(before, float) and math.isclose(after, before))


def _diagnostic_values(msg: DiagnosticArray) -> dict[str, str]:
    return {kv.key: kv.value for kv in msg.status[0].values}


def _invalid_count(rec: Recorder) -> int:
    msg = rec.wait_for("/diagnostics")
    return int(_diagnostic_values(rec.messages("/diagnostics")[-1] or msg)["frames_invalid"])


def test_bad_frames_are_counted_in_diagnostics_and_produce_no_outputs(harness: Harness) -> None:
    rec = harness.recorder
    unsupported = rgb_image(_frame(98), stamp_now(harness.tester), "x")
    unsupported.encoding = "hsv8"
    wrong_step = rgb_image(_frame(97), stamp_now(harness.tester), "x")
    wrong_step.step = IN_W * 3 - 2
    truncated = rgb_image(_frame(96), stamp_now(harness.tester), "x", pad=2)
    truncated.data = truncated.data[: len(truncated.data) // 2]
    bad = (unsupported, wrong_step, truncated)
    first = _invalid_count(rec)
    for msg in bad:
        _send_until_counted(harness, msg, f"invalid frame ({msg.encoding}, step {msg.step})")
    values = _diagnostic_values(rec.messages("/diagnostics")[-1])
    status = rec.messages("/diagnostics")[-1].status[0]
    assert int(values["frames_invalid"]) >= first + 3
    assert "truncated" in values["last_invalid_reason"]
    assert status.level == status.WARN and status.name.startswith(NODE_NAME)
    assert values["active_provider"] == "cpu" and values["model_path"].endswith(".onnx")
    for key in ("rate_hz", "latency_p50_ms", "latency_p95_ms", "frames_dropped"):
        assert float(values[key]) >= 0
    # Where the latency goes: each stage is a part of every frame's latency, so its p50 is at
    # most the latency's; the engine call is never free.
    stages = {stage: float(values[f"{stage}_p50_ms"]) for stage in FRAME_STAGES}
    assert all(0 <= ms <= float(values["latency_p50_ms"]) for ms in stages.values()), stages
    assert stages["inference"] > 0
    for topic in STAMPED:
        for msg in bad:
            assert not rec.with_stamp(topic, msg.header.stamp), topic
    # Bytes no ROS 2 middleware writes, published as a serialized message: the node takes its
    # images serialized (ros/received.py) and refuses this one the same way.
    _send_until_counted(harness, b'{"not": "cdr"}', "a payload that is not CDR")
    values = _diagnostic_values(rec.messages("/diagnostics")[-1])
    assert "not a CDR-serialized message" in values["last_invalid_reason"]
    harness.send_and_wait()  # the node keeps running


def test_the_node_gives_the_executor_no_event_handlers_of_its_own(harness: Harness) -> None:
    """ros/event_callbacks.py: the outputs and camera subscriptions have none; what is left is
    rclpy's default pair on its own /parameter_events publisher."""
    assert harness.node.publishers and harness.node.subscriptions
    assert len(list(harness.node.waitables)) <= 2


def _send_until_counted(harness: Harness, msg, what: str) -> None:
    """Publish ``msg`` until the node's diagnostics count one more invalid frame (best effort
    may lose a frame)."""
    rec = harness.recorder
    count = _invalid_count(rec)
    for _ in range(10):
        harness.feed.send(msg)
        try:
            rec.wait_for("/diagnostics", lambda d: int(
                _diagnostic_values(d)["frames_invalid"]) > count, 2.0)
            return
        except AssertionError:
            continue
    raise AssertionError(f"{what} never counted")


def _transition(harness: Harness, transition: int) -> bool:
    return harness.service(ChangeState, "change_state",
                           ChangeState.Request(transition=Transition(id=transition))).success


def _state(harness: Harness) -> int:
    return harness.service(GetState, "get_state", GetState.Request()).current_state.id


def test_lifecycle_services_stop_and_resume_publishing(harness: Harness) -> None:
    import gc
    import time

    assert _state(harness) == State.PRIMARY_STATE_ACTIVE
    assert gc.get_freeze_count() > 1000      # what existed at activation skips collections (ros/heap.py)
    assert _transition(harness, Transition.TRANSITION_DEACTIVATE)
    assert _state(harness) == State.PRIMARY_STATE_INACTIVE
    assert gc.get_freeze_count() == 0
    harness.recorder.clear()
    for _ in range(5):  # frames sent while inactive produce nothing
        harness.send()
        time.sleep(0.1)
    time.sleep(1.0)
    assert all(not harness.recorder.messages(t) for t in ALL_TOPICS if t != "/diagnostics")
    status = harness.recorder.messages("/diagnostics")[-1].status[0]    # it says why
    assert status.level == DiagnosticStatus.WARN and "inactive" in status.message

    assert _transition(harness, Transition.TRANSITION_ACTIVATE)
    assert _state(harness) == State.PRIMARY_STATE_ACTIVE
    harness.feed.wait_connected()
    harness.send_and_wait()

    assert _transition(harness, Transition.TRANSITION_DEACTIVATE)
    assert _transition(harness, Transition.TRANSITION_CLEANUP)
    assert _state(harness) == State.PRIMARY_STATE_UNCONFIGURED
    assert _transition(harness, Transition.TRANSITION_CONFIGURE)
    assert _state(harness) == State.PRIMARY_STATE_INACTIVE
    assert _transition(harness, Transition.TRANSITION_ACTIVATE)
    harness.feed.wait_connected()
    harness.send_and_wait(f"{CAMERA}/semantic/color")


def test_a_missing_model_fails_configure_and_leaves_the_node_unconfigured(
        tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    session = RosSession()
    try:
        node = PerceptionNode(context=session.context, cli_args=[
            "--ros-args", "-r", "__node:=perception_without_model"], parameter_overrides=[
            Parameter("model_path", value=str(tmp_path / "missing.onnx"))])
        assert not autostart(node)
        errors = [line for line in capfd.readouterr().err.splitlines() if "[ERROR]" in line]
        assert len(errors) == 1, errors  # one line that says what to do
        assert "missing.onnx' is not a file; give an ONNX model" in errors[0]
        assert "the parameter model_path" in errors[0]
        session.add(node)
        tester = session.add(Node("tester2", context=session.context))
        state = call(tester, GetState, "/perception_without_model/get_state", GetState.Request())
        assert state.current_state.id == State.PRIMARY_STATE_UNCONFIGURED
    finally:
        session.close()



def _own_status(name_prefix: str) -> Callable[[DiagnosticArray], bool]:
    return lambda msg: bool(msg.status) and msg.status[0].name.startswith(name_prefix)


def test_two_cameras_share_one_inference_call_and_only_the_first_drives_the_vehicle_outputs(
        tiny_model_path: Path) -> None:
    """Both cameras publish a frame at once: at least one inference call carries both (batch of 2,
    as the engine counts it in /diagnostics); each camera's outputs keep its own frame id and
    stamps, and only the first camera's frames drive odometry."""
    session = RosSession()
    try:
        node = PerceptionNode(context=session.context, cli_args=[
            "--ros-args", "-r", "__ns:=/two"], parameter_overrides=[
            Parameter("model_path", value=str(tiny_model_path)),
            Parameter("providers", value=["cpu"]), Parameter("warmup_runs", value=0),
            Parameter("cameras", value=["front", "rear"]), Parameter("max_gap_s", value=5.0),
            Parameter("batch_window_s", value=0.3), Parameter("diagnostics_period_s", value=0.1)])
        assert autostart(node)
        session.add(node)
        # its own namespace: the module's node (still running) also listens on /front/...
        tester = session.add(Node("tester3", namespace="two", context=session.context))
        recorder = Recorder(tester, [("front/depth", Image), ("rear/depth", Image),
                                     ("odometry", Odometry), ("steering/angle", Float32),
                                     ("/diagnostics", DiagnosticArray)])
        ours = _own_status("two/")      # /diagnostics also carries the module node's status
        feeds = {cam: CameraFeed(tester, cam) for cam in ("front", "rear")}
        for feed in feeds.values():
            feed.wait_connected()
        sent: dict[str, list] = {"front": [], "rear": []}

        def batched(msg: DiagnosticArray) -> bool:
            return ours(msg) and int(_diagnostic_values(msg)["max_frames_per_call"]) >= 2

        for seed in range(20):      # best effort may lose a frame: send pairs until one batched
            for cam, feed in feeds.items():
                msg = rgb_image(_frame(seed), stamp_now(tester), f"{cam}_optical")
                sent[cam].append(msg.header.stamp)
                feed.send(msg, camera_info(IN_W, IN_H, f"{cam}_optical"))
            try:
                recorder.wait_for("odometry", timeout_s=0.5)
                recorder.wait_for("rear/depth", timeout_s=0.5)
                recorder.wait_for("/diagnostics", batched, timeout_s=0.5)
                break
            except AssertionError:
                continue
        wait_until(lambda: any(map(batched, recorder.messages("/diagnostics"))), 2.0,
                   "an inference call carrying both cameras (max_frames_per_call 2 in /diagnostics)")
        values = _diagnostic_values(recorder.wait_for("/diagnostics", batched))
        assert int(values["max_frames_per_call"]) == 2      # two cameras, each once per call
        for cam in ("front", "rear"):
            depth = recorder.wait_for(f"{cam}/depth")
            assert depth.header.frame_id == f"{cam}_optical"
            assert depth.header.stamp in sent[cam]
        assert all(o.header.stamp in sent["front"] for o in recorder.messages("odometry"))
    finally:
        session.close()
