"""The live node (real rclpy over Fast DDS on loopback) under faults: NaN / Inf model outputs, bad
camera_info, time jumps, sim time with a clock jumping back, stale input, bad parameters, lifecycle
transitions while frames stream, broken model files and SIGINT / SIGTERM.

One node with the poisoned model (finite except on frames with a marked corner, see
``fault_helpers``) serves most tests; its steering limits are wide and fast so commands follow
the network.
"""

from __future__ import annotations

import math
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from nav_msgs.msg import Odometry, Path as PathMsg
from rcl_interfaces.srv import SetParameters
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Float32
from visualization_msgs.msg import Marker

from fault_helpers import INF_CORNER, NAN_CORNER, frame_with_corner, poisoned_model, running_node
from model_helpers import with_contract_version
from ros_helpers import (CameraFeed, Recorder, RosSession, call, camera_info, rgb_image, stamp_now,
                         subprocess_env, wait_until)
from unified_perception.ros import builders
from unified_perception.ros.node import PerceptionNode, autostart
from unified_perception.ros.params import PARAMS
from unified_perception.runtime.markers import steering_arrow

H, W = 64, 128      # camera frames at the model size: the marked corner reaches the model as is
TOPICS = {"front/depth": Image, "front/depth/camera_info": CameraInfo, "front/semantic": Image,
          "front/motion_mask": Image, "front/scene_flow": Image, "odometry": Odometry,
          "path": PathMsg, "steering/angle": Float32, "steering/marker": Marker,
          "/diagnostics": DiagnosticArray}
STAMPED_OUTPUTS = [t for t in TOPICS if t not in ("steering/angle", "/diagnostics")]
TWO_FRAME = ("front/motion_mask", "front/scene_flow", "odometry")
HELD_RGBA = steering_arrow(0.0, True, 1.0).rgba


@pytest.fixture(scope="module")
def poisoned(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return poisoned_model(tiny_model_path, tmp_path_factory.mktemp("poisoned") / "poisoned.onnx")


class Car:
    """The node, a camera feed and a recorder of every output."""

    def __init__(self, node, tester) -> None:
        self.node, self.tester = node, tester
        self.status_name = f"{node.get_namespace().strip('/')}/{node.get_name()}: inference"
        self.recorder = Recorder(tester, TOPICS.items())
        self.feed = CameraFeed(tester, "front")
        self.feed.wait_connected()
        self.rng = np.random.default_rng(0)

    def image(self, stamp: Time | None = None, corner: int = 0) -> Image:
        rgb = self.rng.integers(0, 250, (H, W, 3), dtype=np.uint8)
        return rgb_image(frame_with_corner(rgb, corner), stamp or stamp_now(self.tester), "cam")

    def deliver(self, msg: Image, info: CameraInfo | None = None) -> Image:
        """Send ``msg`` (again, if best effort lost it) until its depth output arrives."""
        for _ in range(15):
            self.feed.send(msg, info if info is not None else camera_info(W, H, "cam"))
            try:
                self.recorder.wait_for("front/depth", lambda m: m.header.stamp == msg.header.stamp, 1.0)
                return msg
            except AssertionError:
                continue
        raise AssertionError("the node produced no depth for a good frame")

    def outputs_of(self, msg: Image, topics=STAMPED_OUTPUTS) -> list[str]:
        return [t for t in topics if self.recorder.with_stamp(t, msg.header.stamp)]

    def status(self) -> DiagnosticStatus:
        """The latest /diagnostics status (waits for the first)."""
        self.recorder.wait_for("/diagnostics")
        return self.recorder.messages("/diagnostics")[-1].status[0]

    def wait_status(self, predicate, what: str, timeout_s: float = 10.0) -> DiagnosticStatus:
        def matching() -> DiagnosticStatus | None:
            # Other nodes of this module publish on /diagnostics too: look at the newest few
            # messages, not only the last one, so another node's status cannot hide ours.
            self.recorder.wait_for("/diagnostics")
            recent = [m.status[0] for m in self.recorder.messages("/diagnostics")[-6:]]
            ours = [s for s in recent if s.name == self.status_name]
            return next((s for s in reversed(ours) if predicate(s)), None)
        return wait_until(matching, timeout_s, what)


@pytest.fixture(scope="module")
def car(poisoned: Path):
    with running_node(poisoned, "faulty", Parameter("diagnostics_period_s", value=0.1),
                      Parameter("steering.stale_timeout_s", value=0.3),
                      Parameter("steering.max_angle_rad", value=1.5),
                      Parameter("steering.max_rate_rad_s", value=20.0),
                      Parameter("steering.smoothing_time_constant_s", value=0.0)) as (_, node, tester):
        yield Car(node, tester)


def _values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


@pytest.mark.parametrize("corner", [NAN_CORNER, INF_CORNER])
def test_non_finite_outputs_publish_nothing_report_error_and_recover(car: Car, corner: int) -> None:
    car.deliver(car.image())
    car.deliver(car.image())
    bad = []
    for _ in range(3):      # a few broken frames: best effort may lose one
        bad.append(car.image(corner=corner))
        car.feed.send(bad[-1], camera_info(W, H, "cam"))
        time.sleep(0.15)
    status = car.wait_status(lambda s: s.level == DiagnosticStatus.ERROR, "ERROR in /diagnostics")
    assert "not finite" in status.message and "depth" in _values(status)["last_non_finite_reason"]
    time.sleep(0.5)     # steering meanwhile only comes from the watchdog (stamped with its clock)
    for msg in bad:
        assert car.outputs_of(msg) == []
    first = car.deliver(car.image())         # recovery: outputs again, state restarted
    assert car.outputs_of(first, TWO_FRAME) == []
    second = car.deliver(car.image())
    car.recorder.wait_for("odometry", lambda m: m.header.stamp == second.header.stamp, 5.0)
    status = car.wait_status(lambda s: s.level != DiagnosticStatus.ERROR, "the ERROR to clear")
    assert int(_values(status)["frames_non_finite"]) >= 1


def _k(info: CameraInfo) -> np.ndarray:
    return np.asarray(info.k).reshape(3, 3)


def test_missing_or_unusable_camera_info_falls_back_to_the_training_intrinsics(car: Car) -> None:
    def info_for(build) -> CameraInfo:
        info = camera_info(W, H, "cam")
        build(info)
        return info

    def output_k(info: CameraInfo | None) -> np.ndarray:
        msg = car.image()
        if info is None:        # no camera_info at all: a node that never saw one
            car.feed.image_pub.publish(msg)
            return _k(car.recorder.wait_for("front/depth/camera_info",
                                            lambda m: m.header.stamp == msg.header.stamp, 5.0))
        car.deliver(msg, info)
        return _k(car.recorder.wait_for("front/depth/camera_info",
                                        lambda m: m.header.stamp == msg.header.stamp, 5.0))

    good = output_k(camera_info(W, H, "cam"))
    np.testing.assert_allclose(good, _k(camera_info(W, H, "cam")))
    doubled = output_k(info_for(lambda i: setattr(i, "k", list(np.asarray(camera_info(
        2 * W, 2 * H, "cam", fx=200.0).k))) or setattr(i, "width", 2 * W) or setattr(i, "height", 2 * H)))
    assert doubled[0, 0] == pytest.approx(100.0)      # same aspect: scaled to the image
    training = output_k(info_for(lambda i: setattr(i, "k", [0.0] * 9)))
    assert not np.allclose(training, good)
    for fault in (lambda i: setattr(i, "k", [math.nan] + list(i.k)[1:]),
                  lambda i: setattr(i, "k", [math.inf] + list(i.k)[1:]),
                  lambda i: setattr(i, "k", [-100.0] + list(i.k)[1:]),
                  lambda i: (setattr(i, "width", 640), setattr(i, "height", 480))):
        np.testing.assert_allclose(output_k(info_for(fault)), training)
    assert car.outputs_of(car.deliver(car.image()), ["front/depth"])


def test_time_backwards_gap_and_duplicates_restart_the_two_frame_outputs(car: Car) -> None:
    car.deliver(car.image())
    car.deliver(car.image())
    now = builders.stamp_to_s(stamp_now(car.tester))
    last = car.recorder.messages("front/depth")[-1].header.stamp
    time.sleep(0.2)
    before = {t: len(car.recorder.with_stamp(t, last)) for t in TWO_FRAME}
    car.deliver(car.image(stamp=last))                      # a duplicated stamp
    gap_after = car.deliver(car.image(stamp=builders.s_to_stamp(now + 5.0)))
    back = car.deliver(car.image(stamp=builders.s_to_stamp(now - 100.0)))
    following = car.deliver(car.image(stamp=builders.s_to_stamp(now - 99.9)))
    odom = car.recorder.wait_for("odometry", lambda m: m.header.stamp == following.header.stamp)
    time.sleep(0.3)
    assert {t: len(car.recorder.with_stamp(t, last)) for t in TWO_FRAME} == before
    for msg in (gap_after, back):
        assert car.outputs_of(msg, TWO_FRAME) == [], builders.stamp_to_s(msg.header.stamp)
    path = car.recorder.wait_for("path", lambda m: m.header.stamp == following.header.stamp)
    assert len(path.poses) == 1         # time went back: odometry and path start again
    assert path.poses[0].pose.position == odom.pose.pose.position
    held = car.recorder.with_stamp("steering/marker", back.header.stamp)
    assert held and tuple(getattr(held[0].color, c) for c in "rgba") == pytest.approx(HELD_RGBA)


def test_stale_input_holds_then_straightens_steering_warns_and_recovers(car: Car) -> None:
    for _ in range(4):
        last = car.deliver(car.image())
    # the last frame's own (not held) marker follows its depth: let it arrive before clearing
    car.recorder.wait_for("steering/marker", lambda m: m.header.stamp == last.header.stamp, 5.0)
    car.recorder.clear()
    stopped = time.monotonic()
    status = car.wait_status(lambda s: "no camera frame" in s.message, "a stale-input WARN")
    assert status.level == DiagnosticStatus.WARN and time.monotonic() - stopped < 2.5
    wait_until(lambda: len(car.recorder.messages("steering/marker")) >= 10, 5.0, "watchdog commands")
    markers = car.recorder.messages("steering/marker")
    assert all(tuple(getattr(m.color, c) for c in "rgba") == pytest.approx(HELD_RGBA)
               for m in markers)
    wait_until(lambda: car.recorder.messages("steering/angle")
               and car.recorder.messages("steering/angle")[-1].data == 0.0, 5.0, "straight steering")
    car.deliver(car.image())
    car.wait_status(lambda s: "no camera frame" not in s.message, "the WARN to clear")


def _set_on(tester, namespace: str, name: str, value) -> tuple[bool, str]:
    response = call(tester, SetParameters, f"/{namespace}/unified_perception/set_parameters",
                    SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()]))
    return response.results[0].successful, response.results[0].reason


def _set(car: Car, name: str, value) -> tuple[bool, str]:
    return _set_on(car.tester, "faulty", name, value)


def test_every_dynamic_parameter_refuses_bad_values_and_takes_a_burst_during_inference(car: Car) -> None:
    dynamic = [p for p in PARAMS if p.dynamic]
    before = {p.name: car.node.get_parameter(p.name).value for p in dynamic}
    for spec in dynamic:
        low, high = spec.range
        bad = [low - 1, high + 1, "fast", True, [1.0]]
        if spec.kind is float:
            bad += [math.nan, math.inf, -math.inf]
        for value in bad:
            ok, reason = _set(car, spec.name, value)
            assert not ok and reason, (spec.name, value)
        assert car.node.get_parameter(spec.name).value == before[spec.name]
    stop = threading.Event()

    def stream() -> None:
        while not stop.is_set():
            car.feed.send(car.image(), camera_info(W, H, "cam"))
            time.sleep(0.03)

    streamer = threading.Thread(target=stream)
    streamer.start()
    try:
        for k in range(30):
            assert _set(car, "steering.max_angle_rad", 0.05 + 0.01 * (k % 5))[0]
            assert _set(car, "motion_threshold", (k % 10) / 10)[0]
            assert _set(car, "pointcloud_stride", 1 + k % 8)[0]
    finally:
        stop.set()
        streamer.join()
    car.recorder.clear()
    car.deliver(car.image())
    car.deliver(car.image())
    angles = [m.data for m in car.recorder.messages("steering/angle")]
    assert angles and all(abs(a) <= 0.09 + 1e-6 for a in angles)
    for name, value in before.items():
        assert _set(car, name, value)[0]


def test_lifecycle_transitions_while_frames_stream(car: Car, capfd: pytest.CaptureFixture) -> None:
    stop = threading.Event()

    def stream() -> None:
        while not stop.is_set():
            car.feed.send(car.image(), camera_info(W, H, "cam"))
            time.sleep(0.01)

    def transition(t: int) -> bool:
        return call(car.tester, ChangeState, "/faulty/unified_perception/change_state",
                    ChangeState.Request(transition=Transition(id=t))).success

    streamer = threading.Thread(target=stream)
    streamer.start()
    try:
        for _ in range(3):
            assert transition(Transition.TRANSITION_DEACTIVATE)
            assert transition(Transition.TRANSITION_ACTIVATE)
        assert transition(Transition.TRANSITION_DEACTIVATE)
        assert transition(Transition.TRANSITION_CLEANUP)
        assert transition(Transition.TRANSITION_CONFIGURE)
        assert transition(Transition.TRANSITION_ACTIVATE)
        time.sleep(0.5)
    finally:
        stop.set()
        streamer.join()
    car.feed.wait_connected()
    car.deliver(car.image())
    assert not [line for line in capfd.readouterr().err.splitlines() if "[ERROR]" in line]


def test_sim_time_with_a_clock_jumping_back_restarts_pairs_and_the_watchdog(poisoned: Path) -> None:
    with running_node(poisoned, "simtime", Parameter("use_sim_time", value=True),
                      Parameter("steering.stale_timeout_s", value=0.3)) as (_, node, tester):
        clock = tester.create_publisher(Clock, "/clock", 10)
        car = Car(node, tester)

        def at(t_s: float) -> Image:
            clock.publish(Clock(clock=builders.s_to_stamp(t_s)))
            time.sleep(0.02)
            return car.image(stamp=builders.s_to_stamp(t_s))

        for k in range(3):
            car.deliver(at(1000.0 + 0.1 * k))
        after = [car.deliver(at(500.0 + 0.1 * k)) for k in range(2)]   # the bag loops
        car.recorder.wait_for("odometry", lambda m: m.header.stamp == after[1].header.stamp)
        assert car.outputs_of(after[0], TWO_FRAME) == []
        # The frame's own marker travels on its own topic: let it land before the watchdog's.
        car.recorder.wait_for("steering/marker", lambda m: m.header.stamp == after[1].header.stamp)
        car.recorder.clear()
        for k in range(1, 11):      # no frames; sim time runs on: the watchdog speaks in sim time
            clock.publish(Clock(clock=builders.s_to_stamp(500.1 + 0.1 * k)))
            time.sleep(0.05)
        markers = car.recorder.wait_for("steering/marker")
        assert 500.4 <= builders.stamp_to_s(markers.header.stamp) <= 501.2


def _broken_model(fault: str, good: Path, folder: Path) -> Path:
    """A model file that cannot be loaded: ``truncated``, of another ``contract_version`` or
    ``missing``."""
    model = folder / "broken.onnx"
    if fault == "truncated":
        model.write_bytes(good.read_bytes()[:100_000])
    elif fault == "contract_version":
        with_contract_version(good, model, "99.0")
    return model


def _transition(tester, namespace: str, transition: int) -> bool:
    return call(tester, ChangeState, f"/{namespace}/unified_perception/change_state",
                ChangeState.Request(transition=Transition(id=transition))).success


@pytest.mark.parametrize("fault,reason", [("truncated", "cannot load.*Re-export"),
                                          ("contract_version", "contract version is 99.0"),
                                          ("missing", "is not a file.*model_path")],
                         ids=["truncated", "contract_version", "missing"])
def test_a_broken_model_is_an_error_in_diagnostics_until_a_good_model_is_configured(
        fault: str, reason: str, tiny_model_path: Path, tmp_path: Path,
        capfd: pytest.CaptureFixture) -> None:
    model, namespace = _broken_model(fault, tiny_model_path, tmp_path), f"broken_{fault}"
    capfd.readouterr()
    session = RosSession()
    try:
        node = PerceptionNode(context=session.context, cli_args=[
            "--ros-args", "-r", f"__ns:=/{namespace}"], parameter_overrides=[
            Parameter("model_path", value=str(model)), Parameter("providers", value=["cpu"]),
            Parameter("warmup_runs", value=0), Parameter("diagnostics_period_s", value=0.1)])
        assert not autostart(node)
        errors = [line for line in capfd.readouterr().err.splitlines() if "[ERROR]" in line]
        assert len(errors) == 1 and re.search(reason, errors[0]), errors
        assert node._state_machine.current_state[1] == "unconfigured"
        session.add(node)
        tester = session.add(Node(f"{namespace}_tester", namespace=namespace,
                                  context=session.context))
        recorder = Recorder(tester, [("/diagnostics", DiagnosticArray)])
        ours = f"{namespace}/unified_perception: inference"

        def status(predicate) -> DiagnosticStatus:
            return recorder.wait_for("/diagnostics", lambda m: m.status[0].name == ours
                                     and predicate(m.status[0]), 10.0).status[0]

        error = status(lambda s: True)      # the node is up and says why it does nothing
        assert error.level == DiagnosticStatus.ERROR, error.message
        assert error.message.startswith("model not loaded: ") and re.search(reason, error.message)
        assert _values(error)["lifecycle_state"] == "unconfigured"

        assert _set_on(tester, namespace, "model_path", str(tiny_model_path))[0]
        assert _transition(tester, namespace, Transition.TRANSITION_CONFIGURE)
        inactive = status(lambda s: _values(s)["lifecycle_state"] == "inactive")
        assert inactive.level == DiagnosticStatus.WARN and "inactive" in inactive.message
        assert _transition(tester, namespace, Transition.TRANSITION_ACTIVATE)
        car = Car(node, tester)
        car.deliver(car.image())
        car.deliver(car.image())
        recovered = car.wait_status(lambda s: s.name == ours and s.level == DiagnosticStatus.OK,
                                    "OK in /diagnostics")
        assert _values(recovered)["lifecycle_state"] == "active"
        ok, why = _set_on(tester, namespace, "model_path", str(model))
        assert not ok and "while the node is configured" in why
    finally:
        session.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_the_node_within_2_s_without_error_lines(sig: int, tiny_model_path: Path) -> None:
    code = "import sys; from unified_perception.ros.node_main import run; sys.exit(run(sys.argv))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--ros-args", "-r", f"__ns:=/signal_{int(sig)}",
         "-p", f"model_path:={tiny_model_path}", "-p", "providers:=[cpu]", "-p", "warmup_runs:=0"],
        env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("active: processing" in line for line in lines), 60.0, "activation")
        start = time.monotonic()
        proc.send_signal(sig)
        assert proc.wait(10.0) == 0
        assert time.monotonic() - start < 2.0
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5.0)
    assert not [line for line in lines if "ERROR" in line or "Failed" in line], lines
