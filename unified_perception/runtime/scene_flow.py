"""Scene flow as 3D points with velocities, packed the way ``sensor_msgs/PointCloud2`` carries them.

Camera optical frame throughout (z forward, x right, y down; metres). Pinhole back-projection of a
pixel grid, vectorised. :func:`pack_flow_cloud` is the cloud layout both message libraries use
(``ros/builders.py`` for rclpy, ``bag_messages.py`` for rosbags).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

FLOW_CLOUD_FIELDS = ("x", "y", "z", "vx", "vy", "vz")
"""Float32 fields of the scene-flow point cloud, in order: position (m) and velocity (m/s)."""


class PackedCloud(NamedTuple):
    """An unorganised PointCloud2 body: :data:`FLOW_CLOUD_FIELDS` as little-endian float32."""

    data: bytes
    width: int              # points (height is 1)
    point_step: int         # bytes per point
    row_step: int           # bytes of the one row
    is_dense: bool          # every value finite
    offsets: tuple[int, ...]  # byte offset of each field


def pack_flow_cloud(xyz_m: np.ndarray, velocity_mps: np.ndarray) -> PackedCloud:
    """``xyz_m``, ``velocity_mps`` ``[M, 3]`` -> the bytes and layout of a PointCloud2."""
    points = np.concatenate([np.asarray(xyz_m, np.float32).reshape(-1, 3),
                             np.asarray(velocity_mps, np.float32).reshape(-1, 3)], axis=1)
    points = np.ascontiguousarray(points, dtype="<f4")
    step = points.itemsize * len(FLOW_CLOUD_FIELDS)
    return PackedCloud(points.tobytes(), points.shape[0], step, step * points.shape[0],
                       bool(np.isfinite(points).all()),
                       tuple(points.itemsize * i for i in range(len(FLOW_CLOUD_FIELDS))))


def backproject(depth_m: np.ndarray, K: np.ndarray, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """3D points of every ``stride``-th pixel of ``depth_m`` ``[h, w]`` (m along optical z).

    ``K`` is ``[3, 3]`` at the depth's size. Returns ``(xyz [h', w', 3] float32, (rows, cols))``:
    the points on the subsampled grid and the pixel rows/columns they came from.
    """
    if depth_m.ndim != 2:
        raise ValueError(f"depth must be [h, w], got shape {list(depth_m.shape)}")
    if int(stride) < 1:
        raise ValueError(f"stride must be a positive integer, got {stride}")
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not K[0, 0] > 0 or not K[1, 1] > 0:
        raise ValueError(f"K must be a 3x3 camera matrix with positive focal lengths, got {K.tolist()}")
    rows = np.arange(0, depth_m.shape[0], stride)
    cols = np.arange(0, depth_m.shape[1], stride)
    z = depth_m[::stride, ::stride].astype(np.float32)
    x = ((cols[None, :] - K[0, 2]) / K[0, 0]).astype(np.float32) * z
    y = ((rows[:, None] - K[1, 2]) / K[1, 1]).astype(np.float32) * z
    return np.stack([x, y, z], axis=-1), (rows, cols)


def scene_flow_points(depth_m: np.ndarray, flow_m: np.ndarray, K: np.ndarray, dt_s: float,
                      stride: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Points and their independent velocities from one frame's depth and scene flow.

    ``depth_m`` ``[h, w] float32`` (m), ``flow_m`` ``[h, w, 3] float32`` (m moved between t-1 and t,
    optical frame of t), ``K`` ``[3, 3]`` at ``(h, w)``, ``dt_s`` the time between the two frames.
    Every ``stride``-th pixel in each direction; pixels with non-finite or non-positive depth or
    non-finite flow are left out. Returns ``(xyz [M, 3] float32 m, velocity_mps [M, 3] float32)``.
    """
    if flow_m.shape != (*depth_m.shape, 3):
        raise ValueError(f"flow must be [h, w, 3] matching depth {list(depth_m.shape)}, "
                         f"got {list(flow_m.shape)}")
    if not (math.isfinite(dt_s) and dt_s > 0.0):
        raise ValueError(f"dt_s must be a positive number of seconds, got {dt_s}")
    xyz, _ = backproject(depth_m, K, stride)
    points = np.concatenate([xyz, flow_m[::stride, ::stride].astype(np.float32, copy=False)],
                            axis=-1).reshape(-1, 6)                        # x y z fx fy fz
    finite = np.isfinite(points)
    valid = points[:, 2] > 0.0
    for channel in range(points.shape[1]):      # 6 ANDs: a reduction along a 6-long axis is slower
        valid &= finite[:, channel]
    points = np.compress(valid, points, axis=0)                            # [M, 6]
    return np.ascontiguousarray(points[:, :3]), points[:, 3:] * np.float32(1.0 / dt_s)
