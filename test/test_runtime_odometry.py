"""Odometry integration from camera ego-motion (REP 103 axes, REP 105 odom -> base_link)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unified_perception.runtime.odometry import (
    ORTHONORMAL_REFINE_MAX_ERROR, orthonormalize,
    OdometryIntegrator, camera_to_base_extrinsic, twist_from_step)
from unified_perception.transforms import (
    invert_transform, make_transform, rotation_to_quaternion, rpy_to_matrix)


def _camera_step(T_base_cam: np.ndarray, T_base_step: np.ndarray) -> np.ndarray:
    """The T_cam_prev_cam_cur a camera mounted at T_base_cam sees when the base moves by T_base_step."""
    return invert_transform(T_base_cam) @ T_base_step @ T_base_cam


def test_optical_axes_map_to_base_link_axes_for_a_forward_camera() -> None:
    T = camera_to_base_extrinsic((1.5, 0.0, 1.2), (0.0, 0.0, 0.0))
    np.testing.assert_allclose(T[:3, 2], [1, 0, 0], atol=1e-12)     # optical z = forward
    np.testing.assert_allclose(T[:3, 0], [0, -1, 0], atol=1e-12)    # optical x = right
    np.testing.assert_allclose(T[:3, 1], [0, 0, -1], atol=1e-12)    # optical y = down
    np.testing.assert_allclose(T[:3, 3], [1.5, 0.0, 1.2])
    left = camera_to_base_extrinsic((0.0, 0.0, 0.0), (0.0, 0.0, math.pi / 2))
    np.testing.assert_allclose(left[:3, 2], [0, 1, 0], atol=1e-12)  # yaw +90 deg looks left


def test_constant_forward_motion_of_a_level_camera_integrates_to_a_line_along_x() -> None:
    odometry = OdometryIntegrator(camera_to_base_extrinsic((1.5, 0.0, 1.2), (0.0, 0.0, 0.0)))
    step = make_transform(np.eye(3), (0.0, 0.0, 0.5))               # 0.5 m along optical z
    positions = np.array([odometry.update(step)[:3, 3] for _ in range(40)])
    np.testing.assert_allclose(positions[:, 0], 0.5 * np.arange(1, 41), atol=1e-9)
    np.testing.assert_allclose(positions[:, 1:], 0.0, atol=1e-9)
    np.testing.assert_allclose(odometry.T_odom_base[:3, :3], np.eye(3), atol=1e-9)


def test_forward_motion_seen_by_a_pitched_offset_camera_still_integrates_along_x() -> None:
    T_base_cam = camera_to_base_extrinsic((1.8, -0.3, 1.4), (0.02, 0.15, -0.1))
    odometry = OdometryIntegrator(T_base_cam)
    step = _camera_step(T_base_cam, make_transform(np.eye(3), (0.8, 0.0, 0.0)))
    for _ in range(100):
        pose = odometry.update(step)
    np.testing.assert_allclose(pose[:3, 3], [80.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(pose[:3, :3], np.eye(3), atol=1e-9)


def test_a_constant_turn_closes_a_circle_and_gives_the_twist() -> None:
    T_base_cam = camera_to_base_extrinsic((1.5, 0.0, 1.2), (0.0, 0.1, 0.0))
    odometry = OdometryIntegrator(T_base_cam)
    n, radius = 72, 10.0
    yaw = 2 * math.pi / n
    T_base_step = make_transform(rpy_to_matrix(0.0, 0.0, yaw),
                                 (radius * math.sin(yaw), radius * (1 - math.cos(yaw)), 0.0))
    poses = [odometry.update(_camera_step(T_base_cam, T_base_step)) for _ in range(n)]
    np.testing.assert_allclose(poses[-1], np.eye(4), atol=1e-6)
    np.testing.assert_allclose(poses[n // 2 - 1][:3, 3], [0.0, 2 * radius, 0.0], atol=1e-6)  # left turn
    linear, angular = twist_from_step(odometry.last_step, dt_s=0.1)
    np.testing.assert_allclose(angular, [0.0, 0.0, yaw / 0.1], atol=1e-9)
    # The body twist of an arc: forward at radius * yaw rate, no sideways slip.
    np.testing.assert_allclose(linear, [radius * yaw / 0.1, 0.0, 0.0], atol=1e-9)


def test_a_non_finite_step_is_rejected_by_its_return_value_and_leaves_the_pose() -> None:
    odometry = OdometryIntegrator(camera_to_base_extrinsic((0.0, 0.0, 1.0), (0.0, 0.0, 0.0)))
    step = make_transform(np.eye(3), (0.0, 0.0, 1.0))
    assert odometry.update(step) is not None
    before = odometry.last_step
    assert odometry.update(np.full((4, 4), np.nan)) is None
    np.testing.assert_allclose(odometry.T_odom_base[:3, 3], [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_array_equal(odometry.last_step, before)
    np.testing.assert_allclose(odometry.update(step)[:3, 3], [2.0, 0.0, 0.0], atol=1e-12)
    odometry.reset()
    np.testing.assert_array_equal(odometry.T_odom_base, np.eye(4))


def test_quaternion_matches_the_rotation() -> None:
    rng = np.random.default_rng(3)
    for roll, pitch, yaw in rng.uniform(-math.pi, math.pi, size=(50, 3)):
        R = rpy_to_matrix(roll, pitch, yaw)
        x, y, z, w = rotation_to_quaternion(R)
        rebuilt = np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        np.testing.assert_allclose(rebuilt, R, atol=1e-9)


def test_a_bad_extrinsic_is_rejected_with_a_hint() -> None:
    with pytest.raises(ValueError, match="camera_to_base_extrinsic"):
        OdometryIntegrator(np.diag([2.0, 1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="3 finite xyz"):
        camera_to_base_extrinsic((0.0, 0.0), (0.0, 0.0, 0.0))


def _polar_factor(R: np.ndarray) -> np.ndarray:
    """The nearest rotation by SVD, the definition orthonormalize must meet."""
    U, _, Vt = np.linalg.svd(R)
    return U @ np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))]) @ Vt


def test_orthonormalize_gives_the_nearest_rotation_near_and_far_from_orthonormal() -> None:
    rng = np.random.default_rng(5)
    for noise in (0.0, 1e-12, 1e-8, 1e-6, ORTHONORMAL_REFINE_MAX_ERROR / 4, 1e-2, 0.3):
        for _ in range(50):
            R = rpy_to_matrix(*rng.uniform(-math.pi, math.pi, 3)) + rng.normal(0.0, noise, (3, 3))
            fixed = orthonormalize(R)
            np.testing.assert_allclose(fixed.T @ fixed, np.eye(3), atol=1e-13)
            assert np.linalg.det(fixed) > 0.0
            np.testing.assert_allclose(fixed, _polar_factor(R), atol=1e-12)
    reflection = np.diag([1.0, 1.0, -1.0])      # orthonormal but not a rotation: the SVD path
    np.testing.assert_allclose(orthonormalize(reflection), _polar_factor(reflection), atol=1e-12)
