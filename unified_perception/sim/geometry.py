"""The simulator's own rotations and poses (elementary rotations, planar poses, the camera mount) as
numpy ``[..., 4, 4] float64``; generic rigid-transform maths is in :mod:`unified_perception.transforms`.
``T_a_b`` maps points of frame b into a."""

from __future__ import annotations

import numpy as np

from unified_perception.transforms import R_LINK_OPTICAL, make_transform


def rot_z(yaw: np.ndarray | float) -> np.ndarray:
    """Rotation about z by ``yaw`` (rad): ``[..., 3, 3]``."""
    yaw = np.asarray(yaw, dtype=np.float64)
    c, s = np.cos(yaw), np.sin(yaw)
    R = np.zeros(yaw.shape + (3, 3))
    R[..., 0, 0], R[..., 0, 1] = c, -s
    R[..., 1, 0], R[..., 1, 1] = s, c
    R[..., 2, 2] = 1.0
    return R


def rot_y(angle: np.ndarray | float) -> np.ndarray:
    """Rotation about y by ``angle`` (rad): ``[..., 3, 3]``."""
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    R = np.zeros(angle.shape + (3, 3))
    R[..., 0, 0], R[..., 0, 2] = c, s
    R[..., 2, 0], R[..., 2, 2] = -s, c
    R[..., 1, 1] = 1.0
    return R


def rot_x(angle: np.ndarray | float) -> np.ndarray:
    """Rotation about x by ``angle`` (rad): ``[..., 3, 3]``."""
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    R = np.zeros(angle.shape + (3, 3))
    R[..., 1, 1], R[..., 1, 2] = c, -s
    R[..., 2, 1], R[..., 2, 2] = s, c
    R[..., 0, 0] = 1.0
    return R


def planar_pose(x: np.ndarray, y: np.ndarray, yaw: np.ndarray, z: np.ndarray | float = 0.0
                ) -> np.ndarray:
    """Poses ``[..., 4, 4]`` at ``(x, y, z)`` with heading ``yaw`` about +z."""
    x = np.asarray(x, dtype=np.float64)
    T = np.zeros(x.shape + (4, 4))
    T[..., :3, :3] = rot_z(yaw)
    T[..., 0, 3] = x
    T[..., 1, 3] = y
    T[..., 2, 3] = z
    T[..., 3, 3] = 1.0
    return T


def camera_extrinsic(mount_xyz_m: tuple[float, float, float], pitch_rad: float) -> np.ndarray:
    """``T_base_cam``: the optical frame in base_link, tilted down by ``pitch_rad``."""
    R = rot_y(pitch_rad) @ R_LINK_OPTICAL  # pitch about base y: positive tilts +x towards -z
    return make_transform(R, np.asarray(mount_xyz_m, dtype=np.float64))


def yaw_to_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """``(x, y, z, w)`` of a rotation about +z."""
    return 0.0, 0.0, float(np.sin(yaw / 2)), float(np.cos(yaw / 2))
