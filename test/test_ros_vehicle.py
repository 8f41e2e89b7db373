"""Vehicle outputs (odometry, path, steering) on real lifecycle publishers, fed FrameResults directly.

The node test covers the whole chain with a random model; here the ego-motion is chosen, so what is
published for a given step can be checked exactly. The arithmetic itself is tested without ROS in
test_runtime_vehicle_state.py; this checks that the messages carry it.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from nav_msgs.msg import Odometry, Path
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.node import Node

from ros_helpers import Recorder, RosSession, wait_until
from unified_perception.ros import builders, params
from unified_perception.ros.publishers import OutputPublishers
from unified_perception.ros.vehicle import VehicleOutputs
from unified_perception.runtime.engine import FrameResult

DT_S = 0.1


def _result(stamp_s: float, T_cam_prev_cam_cur: np.ndarray) -> FrameResult:
    return FrameResult(camera="front", stamp_s=stamp_s, depth_m=None, semantic=None,
                       instances=None, panoptic=None, motion_prob=None, scene_flow_m=None,
                       T_cam_prev_cam_cur=T_cam_prev_cam_cur, steering_rad=None,
                       latent=np.zeros(4, np.float32), pair_valid=True, dt_s=DT_S)


@pytest.fixture()
def vehicle():
    session = RosSession()
    node = LifecycleNode("vehicle_under_test", context=session.context)
    for spec in params.PARAMS:
        node.declare_parameter(spec.name, spec.default, spec.descriptor())
    settings = params.read(node)
    outputs = OutputPublishers(node, settings.cameras, publish_tf=False)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    session.add(node)
    tester = session.add(Node("vehicle_tester", context=session.context))
    recorder = Recorder(tester, [("odometry", Odometry), ("path", Path)])
    wait_until(lambda: outputs.vehicle.odometry.wanted() and outputs.vehicle.path.wanted(), 20.0,
               "the recorder to connect")
    yield VehicleOutputs(outputs.vehicle, settings), recorder
    session.close()


def test_a_non_finite_ego_motion_publishes_no_odometry(vehicle) -> None:
    outputs, recorder = vehicle
    step = np.eye(4)
    step[2, 3] = 1.0                       # 1 m forward along optical z
    outputs.on_result(_result(10.0, step), builders.s_to_stamp(10.0), builders.s_to_stamp(10.0))
    first = recorder.wait_for("odometry")
    assert first.pose.pose.position.x == pytest.approx(1.0)
    assert first.twist.twist.linear.x == pytest.approx(1.0 / DT_S)

    bad = np.full((4, 4), np.nan)
    outputs.on_result(_result(10.1, bad), builders.s_to_stamp(10.1), builders.s_to_stamp(10.1))
    outputs.on_result(_result(10.2, step), builders.s_to_stamp(10.2), builders.s_to_stamp(10.2))
    last = recorder.wait_for("odometry", lambda m: m.header.stamp == builders.s_to_stamp(10.2))
    time.sleep(0.2)
    stamps = [builders.stamp_to_s(m.header.stamp) for m in recorder.messages("odometry")]
    assert stamps == pytest.approx([10.0, 10.2]), "the frame with a non-finite pose published odometry"
    assert last.pose.pose.position.x == pytest.approx(2.0)


def test_the_path_is_published_once_per_period_with_every_pose(vehicle) -> None:
    """Every frame publishes odometry; /path (the whole path) goes out on the first frame, then
    once per ``path_period_s`` (0.5 s) of camera stamps, and at once after a time jump back."""
    outputs, recorder = vehicle
    step = np.eye(4)
    step[2, 3] = 1.0
    stamps = [10.0 + DT_S * i for i in range(12)] + [5.0, 5.1]      # 10.0 .. 11.1, then back
    for stamp in stamps:
        outputs.on_result(_result(stamp, step), builders.s_to_stamp(stamp), builders.s_to_stamp(stamp))
    recorder.wait_for("odometry", lambda m: m.header.stamp == builders.s_to_stamp(5.1))
    recorder.wait_for("path", lambda m: m.header.stamp == builders.s_to_stamp(5.0))
    time.sleep(0.2)
    paths = recorder.messages("path")
    assert [builders.stamp_to_s(m.header.stamp) for m in paths] == pytest.approx([10.0, 10.5, 11.0, 5.0])
    assert [len(m.poses) for m in paths] == [1, 6, 11, 1]
    assert len(recorder.messages("odometry")) == len(stamps)
