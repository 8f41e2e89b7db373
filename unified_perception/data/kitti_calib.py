"""KITTI raw calibration and OXTS files -> camera intrinsics, LiDAR projection and camera poses.

Frames (KITTI raw devkit): ``velo`` (x forward, y left, z up), ``cam0`` the unrectified left grey
camera, ``rect`` the common rectified frame of all cameras (``R_rect_00 @ cam0``), ``cam2`` / ``cam3``
the rectified colour cameras (``rect`` shifted by the baseline folded into ``P_rect_0X``), ``imu``
the OXTS unit (x forward, y left, z up).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unified_perception.data.errors import DatasetError, MissingFileError
from unified_perception.transforms import invert_transform, make_transform, rpy_to_matrix

EARTH_RADIUS_M = 6378137.0
"""WGS84 equatorial radius, as in the KITTI devkit's Mercator conversion."""

CAMERA_INDEX = {"l": 2, "r": 3}


def read_calib_file(path: Path) -> dict[str, np.ndarray]:
    """``key: v1 v2 ...`` lines -> ``{key: float64 values}``; non-numeric values (calib_time) skipped."""
    if not path.is_file():
        raise MissingFileError(path, "KITTI calibration file",
                               "Unpack the drive's calibration zip (e.g. 2011_09_26_calib.zip) into "
                               "the date folder")
    values: dict[str, np.ndarray] = {}
    for line in path.read_text().splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        try:
            values[key.strip()] = np.array([float(v) for v in rest.split()], dtype=np.float64)
        except ValueError:
            continue
    return values


def _need(values: dict[str, np.ndarray], key: str, size: int, path: Path) -> np.ndarray:
    if key not in values or values[key].size != size:
        raise DatasetError(f"KITTI calibration {path} has no field '{key}' with {size} numbers; "
                           f"the file looks damaged, unpack the calibration zip again")
    return values[key]


@dataclass(frozen=True)
class KittiCalibration:
    """Calibration of one recording day and one colour camera (2 = left, 3 = right).

    ``P_rect [3, 4]``: projection of rectified-frame points into that camera's image (pixels);
    ``T_cam_velo`` / ``T_cam_imu [4, 4]``: LiDAR / IMU points into that camera's rectified optical
    frame; ``image_size``: ``(H, W)`` of the rectified images (``S_rect_0X``).
    """

    P_rect: np.ndarray
    T_cam_velo: np.ndarray
    T_cam_imu: np.ndarray
    image_size: tuple[int, int]

    @property
    def K(self) -> np.ndarray:
        """``[3, 3]`` intrinsics of the rectified camera (pixels, native size)."""
        return self.P_rect[:, :3].copy()

    @property
    def P_velo(self) -> np.ndarray:
        """``[3, 4]`` projection of homogeneous LiDAR points to ``(u w, v w, w)``, ``w`` = depth (m)."""
        return self.K @ self.T_cam_velo[:3, :]


def load_calibration(date_dir: Path, camera: int) -> KittiCalibration:
    """Read ``calib_cam_to_cam.txt``, ``calib_velo_to_cam.txt``, ``calib_imu_to_velo.txt`` of a day."""
    cam_path = date_dir / "calib_cam_to_cam.txt"
    velo_path = date_dir / "calib_velo_to_cam.txt"
    imu_path = date_dir / "calib_imu_to_velo.txt"
    cam, velo, imu = read_calib_file(cam_path), read_calib_file(velo_path), read_calib_file(imu_path)
    P_rect = _need(cam, f"P_rect_0{camera}", 12, cam_path).reshape(3, 4)
    R_rect = np.eye(4)
    R_rect[:3, :3] = _need(cam, "R_rect_00", 9, cam_path).reshape(3, 3)
    width, height = _need(cam, f"S_rect_0{camera}", 2, cam_path)
    T_cam0_velo = make_transform(_need(velo, "R", 9, velo_path).reshape(3, 3),
                                 _need(velo, "T", 3, velo_path))
    T_velo_imu = make_transform(_need(imu, "R", 9, imu_path).reshape(3, 3),
                                _need(imu, "T", 3, imu_path))
    # P_rect = K [I | t]: t is the offset of this camera from the rectified frame.
    offset = np.linalg.solve(P_rect[:, :3], P_rect[:, 3])
    T_cam_rect = make_transform(np.eye(3), offset)
    T_cam_velo = T_cam_rect @ R_rect @ T_cam0_velo
    return KittiCalibration(
        P_rect=P_rect, T_cam_velo=T_cam_velo, T_cam_imu=T_cam_velo @ T_velo_imu,
        image_size=(int(round(height)), int(round(width))))


def read_oxts(path: Path) -> np.ndarray:
    """The 30 numbers of one OXTS line (lat, lon, alt, roll, pitch, yaw, velocities...) ``[30]``."""
    if not path.is_file():
        raise MissingFileError(path, "KITTI OXTS file", "Unpack the drive's synced+rectified zip")
    values = np.array(path.read_text().split(), dtype=np.float64)
    if values.size != 30:
        raise DatasetError(f"KITTI OXTS file {path} has {values.size} numbers, expected 30 "
                           f"(lat lon alt roll pitch yaw ...)")
    return values


def oxts_to_world(oxts: np.ndarray, mercator_scale: float) -> np.ndarray:
    """``[..., 4, 4]`` ``T_world_imu`` from OXTS rows ``[..., >= 6]`` (Mercator x east, y north, z up).

    ``mercator_scale`` is ``cos(lat0)`` of the sequence's first frame (KITTI devkit convention).
    """
    lat, lon, alt, roll, pitch, yaw = np.moveaxis(np.asarray(oxts)[..., :6], -1, 0)
    x = mercator_scale * np.deg2rad(lon) * EARTH_RADIUS_M
    y = mercator_scale * EARTH_RADIUS_M * np.log(np.tan(np.deg2rad(90.0 + lat) / 2.0))
    return make_transform(rpy_to_matrix(roll, pitch, yaw), np.stack([x, y, alt], -1))


def camera_poses(oxts: np.ndarray, first_oxts: np.ndarray, calib: KittiCalibration) -> np.ndarray:
    """``[N, 4, 4]`` ``T_odom_cam`` for OXTS rows ``[N, 30]``; odom = the IMU at the drive's first frame."""
    scale = float(np.cos(np.deg2rad(first_oxts[0])))
    T_world_imu0 = oxts_to_world(first_oxts, scale)
    T_odom_imu = invert_transform(T_world_imu0) @ oxts_to_world(oxts, scale)
    return T_odom_imu @ invert_transform(calib.T_cam_imu)


def project_lidar(points: np.ndarray, P_velo: np.ndarray, size: tuple[int, int],
                  pixel_map: np.ndarray | None = None) -> np.ndarray:
    """Sparse depth map ``[H, W] float32`` (m along optical z, 0 = no point) from LiDAR points.

    Args:
        points: ``[N, >= 3]`` x, y, z in the LiDAR frame (m); extra columns (reflectance) ignored.
        P_velo: ``[3, 4]`` projection to ``(u w, v w, w)`` at the native image size.
        size: ``(H, W)`` of the output.
        pixel_map: ``[3, 3]`` map from native pixel coordinates to output ones (resizing).

    Points with ``w <= 0`` or outside the image are dropped; where several points fall in one pixel
    (pixel centres at integer coordinates, coordinates rounded) the nearest wins.
    """
    height, width = size
    xyz1 = np.concatenate([points[:, :3].astype(np.float64), np.ones((len(points), 1))], axis=1)
    uvw = xyz1 @ P_velo.T
    depth = uvw[:, 2]
    front = depth > 0
    uvw, depth = uvw[front], depth[front]
    uv1 = np.stack([uvw[:, 0] / depth, uvw[:, 1] / depth, np.ones_like(depth)], axis=1)
    if pixel_map is not None:
        uv1 = uv1 @ pixel_map.T
    cols, rows = np.round(uv1[:, 0]).astype(np.int64), np.round(uv1[:, 1]).astype(np.int64)
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    pixel, depth = rows[inside] * width + cols[inside], depth[inside]
    order = np.lexsort((depth, pixel))          # by pixel, nearest first within a pixel
    pixel, depth = pixel[order], depth[order]
    first = np.ones(pixel.size, dtype=bool)
    first[1:] = pixel[1:] != pixel[:-1]
    out = np.zeros(height * width, dtype=np.float32)
    out[pixel[first]] = depth[first]
    return out.reshape(height, width)
