"""The node's plain parts without a running node: parameter table, newest-frame slots, builders."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rcl_interfaces.msg import ParameterType
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from unified_perception.ros import builders
from unified_perception.ros.camera_input import CameraInputs
from unified_perception.ros.params import PARAM_BY_NAME, PARAMS, validate
from unified_perception.ros.publishers import Outbox
from unified_perception.runtime.image_codec import decode_array
from unified_perception.transforms import make_transform, rpy_to_matrix


def test_descriptors_carry_type_range_read_only_and_description() -> None:
    for spec in PARAMS:
        desc = spec.descriptor()
        assert desc.description and desc.name == spec.name
        assert desc.read_only == (not (spec.dynamic or spec.unconfigured))
    threshold = PARAM_BY_NAME["motion_threshold"].descriptor()
    assert threshold.type == ParameterType.PARAMETER_DOUBLE
    assert (threshold.floating_point_range[0].from_value,
            threshold.floating_point_range[0].to_value) == (0.0, 1.0)
    stride = PARAM_BY_NAME["pointcloud_stride"].descriptor()
    assert stride.integer_range[0].from_value == 1
    assert {p.name for p in PARAMS if p.dynamic} >= {
        "motion_threshold", "steering.max_angle_rad", "steering.max_rate_rad_s",
        "steering.smoothing_time_constant_s", "steering.stale_timeout_s"}
    assert not any(PARAM_BY_NAME[n].dynamic for n in ("model_path", "cameras", "providers"))
    assert PARAM_BY_NAME["model_path"].unconfigured and not PARAM_BY_NAME["cameras"].unconfigured
    refused = validate([Parameter("model_path", value="other.onnx")], configured=True)
    assert not refused.successful and "clean up" in refused.reason
    assert validate([Parameter("model_path", value="other.onnx")], configured=False).successful


def test_validation_names_the_parameter_and_the_reason() -> None:
    assert validate([Parameter("motion_threshold", value=0.3)]).successful
    result = validate([Parameter("motion_threshold", value=0.3),
                       Parameter("steering.max_angle_rad", value=float("inf"))])
    assert not result.successful and "steering.max_angle_rad must be a finite number" in result.reason
    result = validate([Parameter("camera_to_base_xyz", value=[1.0, 2.0])])
    assert not result.successful and "needs 3 finite numbers" in result.reason
    assert "must be one of" in validate([Parameter("transport", value="h264")]).reason


def test_newest_frame_wins_and_replaced_frames_are_counted_as_dropped() -> None:
    dropped: list[int] = []
    inputs = CameraInputs(["front", "rear"], dropped.append)
    for k in range(3):
        inputs.offer_frame("front", Image(width=k))
    inputs.offer_frame("rear", Image(width=10))
    frames = inputs.take(0.0)
    assert [(f.camera, f.camera_index, f.msg.width) for f in frames] == [
        ("front", 0, 2), ("rear", 1, 10)]
    assert sum(dropped) == 2 and inputs.received == 4
    assert inputs.take(0.0) == []


def test_a_frame_remembers_when_the_middleware_received_it_and_when_it_was_taken() -> None:
    import time

    from unified_perception.ros.camera_input import in_middleware_s

    inputs = CameraInputs(["front"], lambda n: None)
    inputs.offer_frame("front", Image(width=1), in_middleware_s=0.004)
    frame, = inputs.take(0.0)
    assert frame.taken_s - frame.received_s == pytest.approx(0.004)
    now_ns = time.time_ns()
    assert 0.004 <= in_middleware_s({"received_timestamp": now_ns - 4_000_000}) < 1.0
    assert in_middleware_s({"received_timestamp": 0}) == 0.0                  # none reported
    assert in_middleware_s({}) == 0.0 and in_middleware_s(None) == 0.0
    assert in_middleware_s({"received_timestamp": 12_345 * 10**9}) == 0.0    # another clock
    assert in_middleware_s({"received_timestamp": now_ns + 10**9}) == 0.0    # ahead of us


def test_take_waits_within_the_batch_window_for_the_other_cameras() -> None:
    import threading
    inputs = CameraInputs(["front", "rear"], lambda n: None)
    inputs.offer_frame("front", Image(width=1))
    late = threading.Timer(0.05, lambda: inputs.offer_frame("rear", Image(width=2)))
    late.start()
    frames = inputs.take(0.0, batch_window_s=2.0)       # returns as soon as rear arrives
    late.join()
    assert [f.camera for f in frames] == ["front", "rear"]
    inputs.offer_frame("front", Image(width=3))
    assert [f.camera for f in inputs.take(0.0, batch_window_s=0.05)] == ["front"]  # rear never came


def test_image_builder_round_trips_through_the_codec() -> None:
    depth = np.random.default_rng(0).uniform(0.1, 80, (4, 6)).astype(np.float32)
    hdr = builders.header(builders.s_to_stamp(12.25), "cam")
    msg = builders.image(depth, "32FC1", hdr)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 250_000_000)
    np.testing.assert_array_equal(decode_array(msg), depth)


def test_flow_cloud_layout_is_six_float32_fields() -> None:
    xyz = np.arange(12, dtype=np.float32).reshape(4, 3)
    vel = -xyz
    cloud = builders.flow_cloud(xyz, vel, builders.header(builders.s_to_stamp(1.0), "cam"))
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (1, 4, 24, 96)
    data = np.frombuffer(bytes(cloud.data), "<f4").reshape(4, 6)
    np.testing.assert_array_equal(data[:, :3], xyz)
    np.testing.assert_array_equal(data[:, 3:], vel)


def test_odometry_pose_and_twist_follow_rep_105() -> None:
    T = make_transform(rpy_to_matrix(0.0, 0.0, 0.3), [2.0, 1.0, 0.0])
    odom = builders.odometry(T, [1.0, 0.0, 0.0], [0.0, 0.0, 0.1],
                             builders.header(builders.s_to_stamp(3.0), "odom"), "base_link")
    q = odom.pose.pose.orientation
    assert math.isclose(2 * math.atan2(q.z, q.w), 0.3, abs_tol=1e-9)
    assert (odom.pose.pose.position.x, odom.pose.pose.position.y) == (2.0, 1.0)
    assert odom.child_frame_id == "base_link" and odom.twist.twist.angular.z == 0.1


def test_steering_marker_points_left_for_a_positive_angle_and_turns_amber_when_held() -> None:
    hdr = builders.header(builders.s_to_stamp(0.0), "base_link")
    live = builders.steering_marker(0.2, False, hdr)
    held = builders.steering_marker(-0.2, True, hdr)
    assert live.points[1].y > 0 > held.points[1].y
    assert live.color.g > live.color.r and held.color.r > held.color.b


def test_transform_stamped_carries_parent_child_and_the_rigid_transform() -> None:
    T = make_transform(rpy_to_matrix(0.0, 0.0, math.pi / 2), [1.0, 2.0, 0.5])
    hdr = builders.header(builders.s_to_stamp(12.25), "odom")
    tf = builders.transform_stamped(T, hdr, "base_link")
    assert (tf.header.frame_id, tf.child_frame_id) == ("odom", "base_link")
    assert (tf.header.stamp.sec, tf.header.stamp.nanosec) == (12, 250_000_000)
    t, q = tf.transform.translation, tf.transform.rotation
    assert (t.x, t.y, t.z) == (1.0, 2.0, 0.5)
    np.testing.assert_allclose([q.x, q.y, q.z, q.w], [0, 0, math.sin(math.pi / 4),
                                                      math.cos(math.pi / 4)], atol=1e-12)


def test_bad_start_up_parameters_give_one_error_naming_each_parameter() -> None:
    """Out of range, wrong type (an integer for a float) or failing a check: one ParameterError
    that names every bad parameter, not an rclpy traceback about the first one."""
    import pytest
    import rclpy
    from rclpy.context import Context

    from unified_perception.ros.node import PerceptionNode
    from unified_perception.ros.params import ParameterError

    context = Context()
    rclpy.init(context=context)
    try:
        with pytest.raises(ParameterError) as err:
            PerceptionNode(context=context, parameter_overrides=[
                Parameter("max_gap_s", value=100.0), Parameter("motion_threshold", value=1),
                Parameter("cameras", value=["front", ""])])
    finally:
        rclpy.shutdown(context=context)
    message = str(err.value)
    assert "max_gap_s" in message and "60.0" in message
    assert "motion_threshold" in message and "DOUBLE" in message
    assert "cameras" in message and "non-empty" in message


def test_output_camera_info_keeps_the_input_distortion_and_scales_k() -> None:
    from sensor_msgs.msg import CameraInfo
    source = CameraInfo(height=720, width=1280, distortion_model="rational_polynomial",
                        d=[-0.3, 0.1, 0.001, 0.002, 0.0, 0.01, 0.0, 0.0],
                        k=[1000.0, 0, 639.5, 0, 1000.0, 359.5, 0, 0, 1])
    K = np.array([[100.0, 0, 63.5], [0, 88.9, 31.5], [0, 0, 1]])
    hdr = builders.header(builders.s_to_stamp(1.0), "front_optical")
    info = builders.camera_info(K, (64, 128), hdr, source)
    assert (info.height, info.width) == (64, 128)
    assert info.distortion_model == "rational_polynomial" and list(info.d) == list(source.d)
    np.testing.assert_allclose(np.reshape(info.p, (3, 4))[:, :3], K)
    plain = builders.camera_info(K, (64, 128), hdr)
    assert plain.distortion_model == "plumb_bob" and not any(plain.d)


def test_a_worker_stopped_mid_batch_never_runs_twice_after_restart() -> None:
    import threading
    import time as _time

    from unified_perception.ros.worker import InferenceWorker
    inputs = CameraInputs(["front"], lambda n: None)
    busy, most_busy, lock = [0], [0], threading.Lock()
    started = threading.Event()

    def slow_process(frames) -> None:
        with lock:
            busy[0] += 1
            most_busy[0] = max(most_busy[0], busy[0])
        started.set()
        _time.sleep(0.5)
        with lock:
            busy[0] -= 1

    worker = InferenceWorker(inputs, slow_process, lambda msg: None, poll_s=0.01)
    worker.start()
    inputs.offer_frame("front", Image(width=1))
    assert started.wait(5.0)
    assert worker.stop(timeout_s=0.01) is False and not worker.running   # still in its batch
    worker.start()                       # waits for the old thread before starting a new one
    inputs.offer_frame("front", Image(width=2))
    _time.sleep(0.1)
    assert worker.stop(timeout_s=5.0) is True
    assert most_busy[0] == 1


class _Listened:
    """Stands in for a TopicPublisher: whether anyone listens, and what went out (in order)."""

    def __init__(self, name: str, listeners: int, sent: list) -> None:
        self.name, self.listeners, self.sent = name, listeners, sent

    def wanted(self) -> bool:
        return self.listeners > 0

    def publish(self, msg: object) -> None:
        self.sent.append((self.name, msg))


def test_the_outbox_builds_only_wanted_messages_and_sends_them_in_order_in_one_burst() -> None:
    sent: list = []
    built: list[str] = []
    steering, depth, unheard = (_Listened(n, k, sent) for n, k in (("steering", 1), ("depth", 2), ("none", 0)))
    outbox = Outbox()
    outbox.add(steering, "angle")
    outbox.add_if_wanted(unheard, lambda: built.append("none") or "never")
    outbox.add_if_wanted(depth, lambda: built.append("depth") or "image")
    assert sent == [] and built == ["depth"], "nothing goes out before publish(); unheard is not built"
    outbox.publish()
    assert sent == [("steering", "angle"), ("depth", "image")]
    outbox.publish()
    assert len(sent) == 2, "published messages are not sent again"
