"""KittiRawReader on a tiny KITTI raw tree written here in the real layout and file formats."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from unified_perception.data import open_dataset
from unified_perception.data.errors import DatasetConfigError, MissingFileError
from unified_perception.data.kitti import KittiRawReader
from unified_perception.data.sample import POSE_FRAME_CAMERA

DATE = "2011_09_26"
DRIVE = f"{DATE}_drive_0001_sync"
H, W = 64, 128
FX = FY = 50.0
CX, CY = 63.5, 31.5
BASELINE_OFFSET = {2: 0.06, 3: -0.47}        # x offset of cam2 / cam3 from the rectified frame (m)
R_VELO_TO_CAM = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
T_VELO_TO_CAM = np.array([0.0, -0.08, -0.27])
T_IMU_TO_VELO = np.array([-0.81, 0.32, -0.8])
LAT0, LON0, ALT0 = 49.0, 8.4, 110.0
EARTH_RADIUS = 6378137.0


def _ry(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


R_RECT = _ry(0.01)


def _fmt(values) -> str:
    return " ".join(f"{v:.6e}" for v in np.ravel(values))


def _P_rect(camera: int) -> np.ndarray:
    return np.array([[FX, 0, CX, FX * BASELINE_OFFSET.get(camera, 0.0)], [0, FY, CY, 0], [0, 0, 1, 0]])


def write_calibration(date_dir: Path) -> None:
    lines = ["calib_time: 09-Jan-2012 13:57:47", "corner_dist: 9.950000e-02"]
    for cam in range(4):
        lines += [f"S_0{cam}: {_fmt([1392, 512])}", f"K_0{cam}: {_fmt(np.eye(3) * 900)}",
                  f"D_0{cam}: {_fmt(np.zeros(5))}", f"R_0{cam}: {_fmt(np.eye(3))}",
                  f"T_0{cam}: {_fmt(np.zeros(3))}", f"S_rect_0{cam}: {_fmt([W, H])}",
                  f"R_rect_0{cam}: {_fmt(R_RECT if cam == 0 else np.eye(3))}",
                  f"P_rect_0{cam}: {_fmt(_P_rect(cam))}"]
    (date_dir / "calib_cam_to_cam.txt").write_text("\n".join(lines) + "\n")
    (date_dir / "calib_velo_to_cam.txt").write_text(
        f"calib_time: 15-Mar-2012 11:37:16\nR: {_fmt(R_VELO_TO_CAM)}\nT: {_fmt(T_VELO_TO_CAM)}\n"
        f"delta_f: {_fmt([0, 0])}\ndelta_c: {_fmt([0, 0])}\n")
    (date_dir / "calib_imu_to_velo.txt").write_text(
        f"calib_time: 25-May-2012 16:47:16\nR: {_fmt(np.eye(3))}\nT: {_fmt(T_IMU_TO_VELO)}\n")


def oxts_track() -> list[tuple[float, float, float]]:
    """(lat, lon, yaw) per frame: start, 5 m east, turn left 90 deg in place, 5 m north."""
    scale = np.cos(np.deg2rad(LAT0))
    lon1 = LON0 + np.rad2deg(5.0 / (scale * EARTH_RADIUS))
    y0 = scale * EARTH_RADIUS * np.log(np.tan(np.deg2rad(90 + LAT0) / 2))
    lat3 = np.rad2deg(2 * np.arctan(np.exp((y0 + 5.0) / (scale * EARTH_RADIUS)))) - 90
    return [(LAT0, LON0, 0.0), (LAT0, lon1, 0.0), (LAT0, lon1, np.pi / 2), (lat3, lon1, np.pi / 2)]


def velodyne_points(frame: int) -> np.ndarray:
    """LiDAR points (x fwd, y left, z up): two at one pixel (near and far), one behind, one far off."""
    points = [(10.0, 1.0, 0.5), (20.0, 2.0, 1.0), (-5.0, 0.0, 0.0), (10.0, -50.0, 0.0),
              (8.0 + frame, -1.5, -0.8)]
    return np.array([(x, y, z, 0.5) for x, y, z in points], dtype=np.float32)


def frame_rgb(camera: int, frame: int) -> np.ndarray:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = 40 * frame + 5
    rgb[..., 1] = 100 + camera
    rgb[..., 2] = np.arange(W, dtype=np.uint8)[None, :]
    return rgb


def write_kitti(root: Path, frames: int = 4) -> Path:
    date_dir = root / DATE
    drive = date_dir / DRIVE
    date_dir.mkdir(parents=True)
    write_calibration(date_dir)
    stamps = "".join(f"2011-09-26 13:02:25.{100_000_000 * k + 964_389:09d}\n" for k in range(frames))
    for cam in (2, 3):
        (drive / f"image_0{cam}" / "data").mkdir(parents=True)
        (drive / f"image_0{cam}" / "timestamps.txt").write_text(stamps)
        for k in range(frames):
            cv2.imwrite(str(drive / f"image_0{cam}" / "data" / f"{k:010d}.png"),
                        cv2.cvtColor(frame_rgb(cam, k), cv2.COLOR_RGB2BGR))
    (drive / "oxts" / "data").mkdir(parents=True)
    (drive / "velodyne_points" / "data").mkdir(parents=True)
    for k, (lat, lon, yaw) in enumerate(oxts_track()[:frames]):
        fields = [lat, lon, ALT0, 0.0, 0.0, yaw] + [0.0] * 17 + [0.1, 0.1, 4, 10, 5, 5, 5]
        assert len(fields) == 30
        (drive / "oxts" / "data" / f"{k:010d}.txt").write_text(" ".join(map(str, fields)) + "\n")
        velodyne_points(k).tofile(drive / "velodyne_points" / "data" / f"{k:010d}.bin")
    return root


@pytest.fixture()
def kitti_root(tmp_path: Path) -> Path:
    return write_kitti(tmp_path / "kitti_raw")


def expected_pixel(point_velo, camera: int = 2) -> tuple[float, float, float]:
    """(u, v, depth) of a LiDAR point in the rectified colour camera, worked out step by step."""
    p_cam0 = R_VELO_TO_CAM @ np.asarray(point_velo[:3], float) + T_VELO_TO_CAM
    p_cam = R_RECT @ p_cam0 + np.array([BASELINE_OFFSET[camera], 0.0, 0.0])
    return FX * p_cam[0] / p_cam[2] + CX, FY * p_cam[1] / p_cam[2] + CY, p_cam[2]


def test_lidar_point_lands_at_its_pixel_with_its_depth_and_nearest_wins(kitti_root: Path) -> None:
    reader = KittiRawReader(kitti_root, drives=[DRIVE])
    assert len(reader) == 2                       # centres 1 and 2 of 4 frames
    sample = reader[0]
    u, v, z = expected_pixel((10.0, 1.0, 0.5))
    u_far, v_far, _ = expected_pixel((20.0, 2.0, 1.0))
    assert (round(u), round(v)) == (round(u_far), round(v_far))   # the far point hides behind
    assert sample.depth_m.dtype == np.float32 and sample.depth_m.shape == (H, W)
    assert sample.depth_m[round(v), round(u)] == pytest.approx(z, rel=1e-6)
    u2, v2, z2 = expected_pixel(velodyne_points(1)[4])
    assert sample.depth_m[round(v2), round(u2)] == pytest.approx(z2, rel=1e-6)
    assert np.count_nonzero(sample.depth_m) == 2  # behind-camera and off-image points dropped
    np.testing.assert_allclose(sample.K, [[FX, 0, CX], [0, FY, CY], [0, 0, 1]])
    for k, frame in enumerate((0, 1, 2)):
        np.testing.assert_array_equal(sample.images[k], frame_rgb(2, frame))
    np.testing.assert_allclose(np.diff(sample.stamps_s), 0.1, atol=1e-6)
    assert sample.steering_rad is None and sample.semantic is None


def test_depth_is_projected_at_the_requested_size(kitti_root: Path) -> None:
    sample = KittiRawReader(kitti_root, drives=[DRIVE], size=(32, 64))[0]
    assert sample.images.shape == (3, 32, 64, 3) and sample.depth_m.shape == (32, 64)
    u, v, z = expected_pixel((10.0, 1.0, 0.5))
    col, row = round((u + 0.5) / 2 - 0.5), round((v + 0.5) / 2 - 0.5)
    assert sample.depth_m[row, col] == pytest.approx(z, rel=1e-6)
    np.testing.assert_allclose(sample.K[0], [FX / 2, 0, (CX + 0.5) / 2 - 0.5])


def test_oxts_gives_camera_poses_that_follow_the_drive(kitti_root: Path) -> None:
    reader = KittiRawReader(kitti_root, drives=[DRIVE], offsets=(0, 1, 2, 3))
    assert len(reader) == 1
    sample = reader[0]
    assert sample.pose_frame == POSE_FRAME_CAMERA and sample.poses.shape == (4, 4, 4)
    rel = [np.linalg.inv(sample.poses[k]) @ sample.poses[k + 1] for k in range(3)]
    forward = R_RECT @ np.array([0.0, 0.0, 5.0])   # 5 m along the IMU x axis, seen by the camera
    np.testing.assert_allclose(rel[0][:3, 3], forward, atol=1e-6)       # 5 m east, heading east
    np.testing.assert_allclose(rel[0][:3, :3], np.eye(3), atol=1e-9)
    np.testing.assert_allclose(rel[2][:3, 3], forward, atol=1e-6)       # 5 m north, heading north
    # turning left by 90 deg: the new optical axis points to the old camera's left (-x)
    np.testing.assert_allclose(rel[1][:3, :3] @ [0, 0, 1], [-1, 0, 0], atol=0.03)
    # the first camera pose is the camera in the IMU frame of frame 0
    # (walk back from the camera: baseline in the rectified frame, cam0 -> velo, velo -> IMU)
    camera_in_imu = (-T_IMU_TO_VELO - R_VELO_TO_CAM.T @ T_VELO_TO_CAM
                     - R_VELO_TO_CAM.T @ R_RECT.T @ [BASELINE_OFFSET[2], 0, 0])
    np.testing.assert_allclose(sample.poses[0][:3, 3], camera_in_imu, atol=1e-9)


def test_split_file_selects_frames_and_cameras(kitti_root: Path, tmp_path: Path) -> None:
    split = tmp_path / "train_files.txt"
    split.write_text(f"{DATE}/{DRIVE} 1 l\n{DRIVE} 2 r\n{DATE}/{DRIVE} 0 l\n\n")
    reader = open_dataset("kitti", kitti_root, split=split)
    assert len(reader) == 2 and reader.skipped == 1      # frame 0 has no t-1
    right = reader[1]
    np.testing.assert_array_equal(right.image, frame_rgb(3, 2))
    u, v, z = expected_pixel((10.0, 1.0, 0.5), camera=3)
    assert right.depth_m[round(v), round(u)] == pytest.approx(z, rel=1e-6)
    summary = reader.describe()
    assert (summary.kind, summary.samples, summary.native_size) == ("kitti_raw", 2, (H, W))
    assert summary.ground_truth == ("depth_m", "poses") and summary.details["skipped_windows"] == 1
    split.write_text(f"{DRIVE} one l\n")
    with pytest.raises(DatasetConfigError, match="line 1"):
        KittiRawReader(kitti_root, split=split)


def test_missing_files_name_the_file(kitti_root: Path, tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="KITTI raw root folder not found: .*nowhere"):
        KittiRawReader(tmp_path / "nowhere")
    with pytest.raises(MissingFileError, match="KITTI split file not found"):
        KittiRawReader(kitti_root, split=tmp_path / "nope.txt")
    (kitti_root / DATE / "calib_velo_to_cam.txt").unlink()
    with pytest.raises(MissingFileError, match="calib_velo_to_cam.txt.*calibration zip"):
        KittiRawReader(kitti_root, drives=[DRIVE])
