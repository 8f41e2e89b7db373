"""Ego-motion of the camera integrated into vehicle odometry (REP 103 / REP 105).

Frames:
* ``base_link``: x forward, y left, z up (REP 103), fixed to the vehicle.
* ``camera_link``: the camera mount, same axis convention as base_link.
* camera optical frame: z forward, x right, y down (REP 103 ``_optical``); the model's ego-motion
  ``T_cam_prev_cam_cur`` is in this frame (the pose of camera t expressed in camera t-1).
* ``odom``: where base_link started (or was last reset), continuous, drifts (REP 105).

``T_a_b`` maps points from frame b into frame a (equivalently: the pose of b in a). All transforms
are ``[4, 4] float64`` homogeneous matrices; translations in metres, angles in radians.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from unified_perception.transforms import (
    R_LINK_OPTICAL, invert_transform, make_transform, matrix_to_rpy, rotation_to_quaternion, rpy_to_matrix)


def camera_to_base_extrinsic(xyz: Sequence[float], rpy: Sequence[float]) -> np.ndarray:
    """``T_base_cam`` for the camera OPTICAL frame, from the ``base_link -> camera_link`` mount pose.

    ``xyz`` (m) and ``rpy`` (rad, roll-pitch-yaw about fixed x, y, z) are the pose of camera_link in
    base_link, as in a URDF joint or a ``static_transform_publisher``; the fixed link -> optical
    rotation :data:`R_LINK_OPTICAL` is appended. Returns ``[4, 4] float64``.
    """
    if len(xyz) != 3 or len(rpy) != 3 or not all(math.isfinite(float(v)) for v in (*xyz, *rpy)):
        raise ValueError(f"camera mount pose needs 3 finite xyz (m) and 3 finite rpy (rad), "
                         f"got xyz={list(xyz)} rpy={list(rpy)}")
    return make_transform(rpy_to_matrix(*(float(v) for v in rpy)) @ R_LINK_OPTICAL, xyz)


def camera_mount_pose(T_base_cam: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """``(xyz, rpy)`` of the ``base_link -> camera_link`` mount for a ``[4, 4]`` ``T_base_cam`` of
    the OPTICAL frame: the inverse of :func:`camera_to_base_extrinsic` (m, rad)."""
    T = np.asarray(T_base_cam, dtype=np.float64)
    rpy = matrix_to_rpy(T[:3, :3] @ R_LINK_OPTICAL.T)
    return tuple(float(v) for v in T[:3, 3]), rpy  # type: ignore[return-value]


ORTHONORMAL_REFINE_MAX_ERROR = 1e-4
"""Largest ``|R^T R - I|`` that :func:`orthonormalize` refines by iteration instead of an SVD."""
_EYE3 = np.eye(3)


def orthonormalize(R: np.ndarray) -> np.ndarray:
    """The rotation matrix nearest to ``R`` (its polar factor), removing drift from repeated products.

    ``R`` here is a rotation up to rounding (a float32 network output, a product of rotations):
    Newton-Schulz steps ``R (3 I - R^T R) / 2`` square the error (1e-7 -> 1e-14, two steps from
    1e-4), at a fraction of the SVD's cost. Anything further from orthonormal, or a reflection,
    goes through the SVD.
    """
    R = np.asarray(R, dtype=np.float64)
    gram = R.T @ R
    error = float(np.abs(gram - _EYE3).max())
    (a, b, c), (d, e, f), (g, h, i) = R.tolist()
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    if error <= ORTHONORMAL_REFINE_MAX_ERROR and det > 0.0:
        for _ in range(1 if error <= 1e-7 else 2):
            R = R @ (1.5 * _EYE3 - 0.5 * gram)
            gram = R.T @ R
        return R
    U, _, Vt = np.linalg.svd(R)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


def rotation_to_axis_angle(R: np.ndarray) -> np.ndarray:
    """``[3]`` axis * angle (rad) of a ``[3, 3]`` rotation."""
    x, y, z, w = rotation_to_quaternion(R)
    sin_half = math.sqrt(x * x + y * y + z * z)
    if sin_half < 1e-12:
        return np.zeros(3)
    angle = 2.0 * math.atan2(sin_half, w)
    return np.array([x, y, z]) / sin_half * angle


def twist_from_step(T_base_prev_base_cur: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Linear (m/s) and angular (rad/s) velocity ``[3]`` of base_link over one step of ``dt_s``.

    The constant body twist that moves base_link by the step in ``dt_s`` (the SE(3) logarithm of
    the step divided by ``dt_s``). A constant body twist has the same coordinates in base_link at
    the start and at the end of the step, so this is the ``twist`` of ``nav_msgs/Odometry`` (child
    frame base_link) at the current frame: a car on an arc gets a purely forward linear velocity.
    """
    if not dt_s > 0.0:
        raise ValueError(f"dt_s must be positive, got {dt_s}")
    omega = rotation_to_axis_angle(T_base_prev_base_cur[:3, :3])
    theta = float(np.linalg.norm(omega))
    W = np.array([[0.0, -omega[2], omega[1]], [omega[2], 0.0, -omega[0]],
                  [-omega[1], omega[0], 0.0]])
    if theta < 1e-9:
        V_inv = np.eye(3) - 0.5 * W
    else:   # inverse of the SE(3) left Jacobian V = I + (1-cos)/th^2 W + (th-sin)/th^3 W^2
        half = 0.5 * theta
        V_inv = np.eye(3) - 0.5 * W + (1.0 - half / math.tan(half)) / theta ** 2 * (W @ W)
    return V_inv @ T_base_prev_base_cur[:3, 3] / dt_s, omega / dt_s


def _check_transform(T: np.ndarray, what: str) -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"{what} must be a [4, 4] transform, got shape {list(T.shape)}")
    return T


class OdometryIntegrator:
    """Chains per-frame camera ego-motion into ``T_odom_base`` (base_link in odom).

    ``T_odom_base_t = T_odom_base_{t-1} @ T_base_cam @ T_cam_prev_cam_cur @ inv(T_base_cam)``.
    A step that is not finite is rejected: :meth:`update` returns None and the pose stays.
    """

    def __init__(self, T_base_cam: np.ndarray) -> None:
        T = _check_transform(T_base_cam, "T_base_cam")
        if not np.all(np.isfinite(T)) or not np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-6):
            raise ValueError("T_base_cam must be a finite rigid transform (orthonormal rotation); "
                             "build it with camera_to_base_extrinsic(xyz, rpy)")
        self.T_base_cam = T
        self.T_cam_base = invert_transform(T)
        self._T_odom_base = np.eye(4)
        self._last_step: np.ndarray | None = None

    @property
    def T_odom_base(self) -> np.ndarray:
        """``[4, 4] float64``: the current pose of base_link in odom (a copy)."""
        return self._T_odom_base.copy()

    @property
    def last_step(self) -> np.ndarray | None:
        """``T_base_prev_base_cur`` of the last accepted step, None after a reset."""
        return None if self._last_step is None else self._last_step.copy()

    def base_step(self, T_cam_prev_cam_cur: np.ndarray) -> np.ndarray:
        """The camera's motion expressed as base_link motion: ``T_base_prev_base_cur``."""
        return self.T_base_cam @ _check_transform(T_cam_prev_cam_cur, "T_cam_prev_cam_cur") @ self.T_cam_base

    def update(self, T_cam_prev_cam_cur: np.ndarray) -> np.ndarray | None:
        """Integrate one frame's camera ego-motion; returns the new ``T_odom_base`` ``[4, 4]``,
        or None when the step is not finite (rejected: pose and :attr:`last_step` unchanged)."""
        step = self.base_step(T_cam_prev_cam_cur)
        if not np.all(np.isfinite(step)):
            return None
        step[:3, :3] = orthonormalize(step[:3, :3])
        step[3] = (0.0, 0.0, 0.0, 1.0)
        pose = self._T_odom_base @ step
        pose[:3, :3] = orthonormalize(pose[:3, :3])
        self._T_odom_base = pose
        self._last_step = step
        return self.T_odom_base

    def reset(self, T_odom_base: np.ndarray | None = None) -> None:
        """Restart at ``T_odom_base`` (identity by default)."""
        self._T_odom_base = np.eye(4) if T_odom_base is None else _check_transform(T_odom_base, "T_odom_base").copy()
        self._last_step = None
