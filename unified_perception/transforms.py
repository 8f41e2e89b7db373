"""Rigid transforms as numpy ``[..., 4, 4] float64`` matrices: one implementation for the runtime,
the simulator and the data readers. ``T_a_b`` maps points of frame b into frame a.

Conventions: REP 103 axes (base_link x forward, y left, z up; optical frame z forward, x right,
y down); quaternions ``(x, y, z, w)`` as in ``geometry_msgs/Quaternion`` (Hamilton).
"""

from __future__ import annotations

import math

import numpy as np

R_LINK_OPTICAL = np.array([[0.0, 0.0, 1.0],
                           [-1.0, 0.0, 0.0],
                           [0.0, -1.0, 0.0]])
"""The optical frame's axes (columns) in a body frame with x forward, y left, z up (camera_link or
base_link): optical z = body x, optical x = -body y, optical y = -body z (REP 103)."""


def make_transform(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """``[..., 4, 4]`` from ``[..., 3, 3]`` rotations and ``[..., 3]`` translations (m)."""
    rotation = np.asarray(rotation, dtype=np.float64)
    out = np.zeros(rotation.shape[:-2] + (4, 4))
    out[..., :3, :3] = rotation
    out[..., :3, 3] = np.asarray(translation, dtype=np.float64)
    out[..., 3, 3] = 1.0
    return out


def invert_transform(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid transforms ``[..., 4, 4]`` (``R^T``, ``-R^T t``)."""
    rotation_t = np.swapaxes(np.asarray(T, dtype=np.float64)[..., :3, :3], -1, -2)
    return make_transform(rotation_t, -(rotation_t @ np.asarray(T)[..., :3, 3:4])[..., 0])


def rpy_to_matrix(roll: np.ndarray | float, pitch: np.ndarray | float,
                  yaw: np.ndarray | float) -> np.ndarray:
    """``[..., 3, 3]`` rotation from fixed-axis roll (x), pitch (y), yaw (z), rad: ``Rz @ Ry @ Rx``
    (URDF, tf2)."""
    roll, pitch, yaw = (np.asarray(a, dtype=np.float64) for a in (roll, pitch, yaw))
    cr, sr, cp, sp = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    return np.stack([
        np.stack(np.broadcast_arrays(cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr), -1),
        np.stack(np.broadcast_arrays(sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr), -1),
        np.stack(np.broadcast_arrays(-sp, cp * sr, cp * cr), -1),
    ], -2)


def matrix_to_rpy(R: np.ndarray) -> tuple[float, float, float]:
    """``(roll, pitch, yaw)`` rad of one ``[3, 3]`` rotation, the inverse of :func:`rpy_to_matrix`
    (pitch within [-pi/2, pi/2]; at pitch +-pi/2 roll is taken as 0)."""
    m = np.asarray(R, dtype=np.float64)
    pitch = math.asin(max(-1.0, min(1.0, -m[2, 0])))
    if abs(m[2, 0]) > 1.0 - 1e-12:              # gimbal lock: only roll -+ yaw is defined
        return 0.0, pitch, math.atan2(-m[0, 1], m[1, 1])
    return math.atan2(m[2, 1], m[2, 2]), pitch, math.atan2(m[1, 0], m[0, 0])


def quaternion_to_matrix(x: np.ndarray | float, y: np.ndarray | float, z: np.ndarray | float,
                         w: np.ndarray | float) -> np.ndarray:
    """``[..., 3, 3]`` rotation of quaternions (normalised here)."""
    q = np.stack(np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (x, y, z, w))), -1)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def rotation_to_quaternion(R: np.ndarray) -> tuple[float, float, float, float]:
    """``(x, y, z, w)`` unit quaternion (w >= 0) of one ``[3, 3]`` rotation."""
    m = np.asarray(R, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0.0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s
    norm = math.sqrt(sum(v * v for v in q))
    x, y, z, w = (float(v) / norm for v in q)
    return (x, y, z, w) if w >= 0.0 else (-x, -y, -z, -w)
