"""Rigid transforms as plain ``[4, 4] float64`` numpy matrices. ``T_a_b`` maps points of frame b into a."""

from __future__ import annotations

import numpy as np

# Optical frame (z forward, x right, y down) expressed in base_link axes (x forward, y left, z up):
# columns are the optical x, y, z axes in base_link coordinates.
R_BASE_OPTICAL = np.array([[0.0, 0.0, 1.0],
                           [-1.0, 0.0, 0.0],
                           [0.0, -1.0, 0.0]])


def make_transform(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """``[4, 4]`` from a ``[3, 3]`` rotation and a ``[3]`` translation."""
    T = np.eye(4)
    T[:3, :3] = rotation
    T[:3, 3] = translation
    return T


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid transform ``[..., 4, 4]``."""
    R = T[..., :3, :3]
    t = T[..., :3, 3]
    out = np.zeros_like(T)
    Rt = np.swapaxes(R, -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, t)
    out[..., 3, 3] = 1.0
    return out


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
    R = rot_y(pitch_rad) @ R_BASE_OPTICAL  # pitch about base y: positive tilts +x towards -z
    return make_transform(R, np.asarray(mount_xyz_m, dtype=np.float64))


def yaw_to_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """``(x, y, z, w)`` of a rotation about +z."""
    return 0.0, 0.0, float(np.sin(yaw / 2)), float(np.cos(yaw / 2))


def rotation_to_quaternion(R: np.ndarray) -> tuple[float, float, float, float]:
    """``(x, y, z, w)`` of a ``[3, 3]`` rotation matrix (w >= 0)."""
    m = R
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        w, x = 0.25 * s, (m[2, 1] - m[1, 2]) / s
        y, z = (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        w, x = (m[2, 1] - m[1, 2]) / s, 0.25 * s
        y, z = (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        w, x = (m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s
        y, z = 0.25 * s, (m[1, 2] + m[2, 1]) / s
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        w, x = (m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s
        y, z = (m[1, 2] + m[2, 1]) / s, 0.25 * s
    q = np.array([x, y, z, w])
    q = q if q[3] >= 0 else -q
    return tuple(float(v) for v in q / np.linalg.norm(q))
