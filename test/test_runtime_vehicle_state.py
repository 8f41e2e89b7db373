"""The vehicle state without ROS: odometry of valid pairs with the body twist, and steering only from
frames that have a steering value, within the limits. (The node only turns these into messages.)"""

from __future__ import annotations

import numpy as np
import pytest

from unified_perception.runtime.engine import FrameResult
from unified_perception.runtime.odometry import camera_to_base_extrinsic
from unified_perception.runtime.steering import SteeringLimits
from unified_perception.runtime.vehicle_state import VehicleState

DT_S = 0.1
LIMITS = SteeringLimits(max_angle_rad=0.2, max_rate_rad_s=100.0, smoothing_time_constant_s=0.0,
                        stale_timeout_s=0.3)
FORWARD_1M = np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1.0], [0, 0, 0, 1]])
"""One metre along the optical z axis: one metre forward for a camera looking ahead."""


def _result(stamp_s: float, T: np.ndarray | None = FORWARD_1M, steering: float | None = None,
            pair_valid: bool = True) -> FrameResult:
    return FrameResult(camera="front", stamp_s=stamp_s, depth_m=None, semantic=None,
                       instances=None, panoptic=None, motion_prob=None, scene_flow_m=None,
                       T_cam_prev_cam_cur=T, steering_rad=steering, latent=np.zeros(4, np.float32),
                       pair_valid=pair_valid, dt_s=DT_S if pair_valid else None)


def _vehicle() -> VehicleState:
    return VehicleState(camera_to_base_extrinsic((1.5, 0.0, 1.4), (0.0, 0.0, 0.0)), LIMITS)


def test_a_forward_step_of_the_camera_moves_base_link_forward_with_its_twist() -> None:
    step = _vehicle().odometry(_result(10.0))
    np.testing.assert_allclose(step.T_odom_base[:3, 3], [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(step.linear_mps, [1.0 / DT_S, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(step.angular_rps, [0.0, 0.0, 0.0], atol=1e-12)
    assert not step.restarted


def test_a_non_finite_ego_motion_gives_no_odometry_and_the_next_step_continues() -> None:
    vehicle = _vehicle()
    vehicle.odometry(_result(10.0))
    assert vehicle.odometry(_result(10.1, np.full((4, 4), np.nan))) is None
    assert vehicle.odometry(_result(10.2, np.where(np.eye(4) > 0, np.inf, 0.0))) is None
    after = vehicle.odometry(_result(10.3))
    np.testing.assert_allclose(after.T_odom_base[:3, 3], [2.0, 0.0, 0.0], atol=1e-12)


def test_an_invalid_pair_gives_no_odometry() -> None:
    assert _vehicle().odometry(_result(10.0, pair_valid=False)) is None


def test_a_frame_without_steering_gives_no_command_and_commands_stay_within_the_limit() -> None:
    vehicle = _vehicle()
    assert vehicle.steering(_result(10.0), 10.0, 10.0) is None
    assert vehicle.steering(_result(10.05, steering=0.0), 10.05, 10.05).angle_rad == 0.0
    out = vehicle.steering(_result(10.1, steering=1.0), 10.1, 10.1)
    assert out.angle_rad == pytest.approx(LIMITS.max_angle_rad) and not out.held
    out = vehicle.steering(_result(10.2, steering=-1.0), 10.2, 10.2)
    assert out.angle_rad == pytest.approx(-LIMITS.max_angle_rad)
