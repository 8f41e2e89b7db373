"""Frame windows from KITTI raw: synced rectified colour images, LiDAR depth, OXTS camera poses.

Layout (as unpacked from the KITTI raw downloads)::

    <root>/<date>/calib_cam_to_cam.txt, calib_velo_to_cam.txt, calib_imu_to_velo.txt
    <root>/<date>/<date>_drive_XXXX_sync/image_02/data/%010d.png (+ image_02/timestamps.txt)
                                         image_03/...            (right camera)
                                         oxts/data/%010d.txt     (30 numbers per line)
                                         velodyne_points/data/%010d.bin (float32 x y z reflectance)

Frames come from a split file (Eigen / Zhou style lines ``<date>/<drive> <frame> <l|r>``) or from
all frames of the given drives. Depth is the LiDAR sweep projected into the camera; poses are
``T_odom_cam`` from OXTS; steering is not available.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from unified_perception.data.base import DatasetSummary, SequenceDataset
from unified_perception.data.errors import DatasetConfigError, DatasetError, MissingFileError
from unified_perception.data.kitti_calib import (
    CAMERA_INDEX, KittiCalibration, camera_poses, load_calibration, project_lidar, read_oxts)
from unified_perception.data.resize import resize_images, scale_intrinsics, scale_matrix
from unified_perception.data.sample import DEFAULT_OFFSETS, POSE_FRAME_CAMERA, Sample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KittiFrame:
    """One centre frame: drive folder relative to the root (``<date>/<drive>``), index, side."""

    drive: str
    index: int
    side: str


@dataclass(frozen=True)
class _Drive:
    """What the reader knows about one drive folder."""

    path: Path
    num_frames: int
    image_ext: str
    stamps_s: np.ndarray          # [num_frames] float64
    has_velodyne: bool
    has_oxts: bool


def read_split(path: str | Path) -> list[KittiFrame]:
    """Parse a split file: ``<date>/<drive> <frame> <l|r>`` per line (the side defaults to ``l``)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, "KITTI split file",
                               "Give a file of '<date>/<drive> <frame> <l|r>' lines (e.g. the "
                               "Eigen-Zhou train_files.txt) or pass drives=[...] instead")
    frames = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        side = parts[2] if len(parts) > 2 else "l"
        if len(parts) not in (2, 3) or not parts[1].isdigit() or side not in CAMERA_INDEX:
            raise DatasetConfigError(
                f"KITTI split file {path} line {number}: expected '<date>/<drive> <frame> <l|r>', "
                f"got {line.strip()!r}")
        frames.append(KittiFrame(_drive_key(parts[0]), int(parts[1]), side))
    return frames


def _drive_key(name: str) -> str:
    """``<date>/<date>_drive_XXXX_sync`` from either that or the bare drive folder name."""
    name = name.strip().strip("/")
    if "/" in name:
        return name
    return f"{name[:10]}/{name}"


def _read_stamps(path: Path) -> np.ndarray:
    """``timestamps.txt`` (``YYYY-MM-DD hh:mm:ss.nnnnnnnnn`` per line) -> ``[N] float64`` s since epoch."""
    if not path.is_file():
        raise MissingFileError(path, "KITTI timestamps file",
                               "Unpack the drive's synced+rectified zip completely")
    lines = [line.strip().replace(" ", "T") for line in path.read_text().splitlines() if line.strip()]
    try:
        ns = np.array(lines, dtype="datetime64[ns]").astype(np.int64)
    except ValueError as err:
        raise DatasetError(f"KITTI timestamps file {path} is not readable: {err}") from None
    return ns.astype(np.float64) * 1e-9


class KittiRawReader(SequenceDataset):
    """Windows of KITTI raw frames with projected LiDAR depth and OXTS camera poses.

    Args:
        path: KITTI raw root (holds the ``2011_09_26``-style date folders).
        split: split file of ``<date>/<drive> <frame> <l|r>`` lines (centre frames), or None.
        drives: drive folders (``2011_09_26_drive_0001_sync`` or ``2011_09_26/...``) whose frames
            are all used, with ``camera``; None with no split: every drive under the root.
        camera: ``"l"`` (image_02) or ``"r"`` (image_03) for ``drives``.
        offsets: window relative to the centre frame (default t-1, t, t+1).
        size: ``(H, W)`` of the samples (None = native, 375 x 1242-ish). LiDAR is projected
            directly at this size, so depth is not degraded by resizing.
        depth: project LiDAR into a depth map (needs ``velodyne_points``).

    Split lines whose window leaves the drive are skipped (counted in :meth:`describe`).
    """

    kind = "kitti_raw"

    def __init__(self, path: str | Path, split: str | Path | None = None,
                 drives: Sequence[str] | None = None, camera: str = "l",
                 offsets: Sequence[int] = DEFAULT_OFFSETS, size: Sequence[int] | None = None,
                 depth: bool = True) -> None:
        super().__init__(offsets, size)
        self.root = Path(path)
        if not self.root.is_dir():
            raise MissingFileError(self.root, "KITTI raw root folder",
                                   "Give the folder that holds the date folders (2011_09_26, ...)")
        if camera not in CAMERA_INDEX:
            raise DatasetConfigError(f"camera must be 'l' (image_02) or 'r' (image_03), got {camera!r}")
        self.load_depth = depth
        self._drives: dict[str, _Drive] = {}
        if split is not None:
            if drives is not None:
                raise DatasetConfigError("give either split or drives, not both")
            wanted = read_split(split)
        else:
            keys = ([_drive_key(d) for d in drives] if drives is not None
                    else sorted(str(p.relative_to(self.root)) for p in self.root.glob("*/*_sync")
                                if p.is_dir()))
            if not keys:
                raise MissingFileError(self.root / "<date>" / "<date>_drive_XXXX_sync",
                                       "KITTI drive folder", "Unpack the synced+rectified drives "
                                       "into their date folders")
            wanted = [KittiFrame(key, index, camera) for key in keys
                      for index in range(self._drive(key, camera).num_frames)]
        self.frames = [f for f in wanted if self._window_fits(f)]
        self.skipped = len(wanted) - len(self.frames)
        if not self.frames:
            raise DatasetError(f"no KITTI frame of {split or 'the drives'} under {self.root} has a "
                               f"whole window {self.offsets} inside its drive")
        for frame in {(f.drive.split("/")[0], f.side): f for f in self.frames}.values():
            self._calibration(frame)      # a missing calibration file fails here, not mid-training
        if self.skipped:
            log.info("KITTI: %d of %d frames skipped: their window %s leaves the drive",
                     self.skipped, len(wanted), self.offsets)

    # -- index --------------------------------------------------------------------------------

    def _drive(self, key: str, side: str) -> _Drive:
        cache_key = f"{key}:{side}"
        if cache_key not in self._drives:
            path = self.root / key
            image_dir = path / f"image_0{CAMERA_INDEX[side]}" / "data"
            if not image_dir.is_dir():
                raise MissingFileError(image_dir, "KITTI image folder",
                                       "Unpack the drive's synced+rectified zip under its date folder")
            names = sorted(p.name for p in image_dir.iterdir() if p.suffix in (".png", ".jpg"))
            if not names:
                raise MissingFileError(image_dir / "0000000000.png", "KITTI image")
            stamps = _read_stamps(image_dir.parent / "timestamps.txt")
            if stamps.size < len(names):
                raise DatasetError(f"{image_dir.parent / 'timestamps.txt'} has {stamps.size} lines "
                                   f"for {len(names)} images; unpack the drive again")
            self._drives[cache_key] = _Drive(
                path=path, num_frames=len(names), image_ext=Path(names[0]).suffix, stamps_s=stamps,
                has_velodyne=(path / "velodyne_points" / "data").is_dir(),
                has_oxts=(path / "oxts" / "data").is_dir())
        return self._drives[cache_key]

    def _window_fits(self, frame: KittiFrame) -> bool:
        drive = self._drive(frame.drive, frame.side)
        return 0 <= frame.index + self.offsets[0] and frame.index + self.offsets[-1] < drive.num_frames

    def _calibration(self, frame: KittiFrame) -> KittiCalibration:
        return _cached_calibration(str(self.root / frame.drive.split("/")[0]),
                                   CAMERA_INDEX[frame.side])

    # -- samples ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.frames)

    def _read_image(self, drive: _Drive, side: str, index: int) -> np.ndarray:
        path = drive.path / f"image_0{CAMERA_INDEX[side]}" / "data" / f"{index:010d}{drive.image_ext}"
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise MissingFileError(path, "KITTI image (missing or unreadable)")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def _depth(self, drive: _Drive, frame: KittiFrame, calib: KittiCalibration,
               native_hw: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray | None:
        if not (self.load_depth and drive.has_velodyne):
            return None
        path = drive.path / "velodyne_points" / "data" / f"{frame.index:010d}.bin"
        if not path.is_file():
            raise MissingFileError(path, "KITTI velodyne sweep",
                                   "Unpack the drive completely or pass depth=False")
        points = np.fromfile(path, dtype=np.float32).reshape(-1, 4)
        pixel_map = None if out_hw == native_hw else scale_matrix(native_hw, out_hw)
        return project_lidar(points, calib.P_velo, out_hw, pixel_map)

    def _poses(self, drive: _Drive, indices: np.ndarray, calib: KittiCalibration) -> np.ndarray | None:
        if not drive.has_oxts:
            return None
        oxts_dir = drive.path / "oxts" / "data"
        oxts = np.stack([read_oxts(oxts_dir / f"{i:010d}.txt") for i in indices])
        return camera_poses(oxts, read_oxts(oxts_dir / f"{0:010d}.txt"), calib)

    def _load(self, index: int) -> Sample:
        frame = self.frames[index]
        drive = self._drive(frame.drive, frame.side)
        calib = self._calibration(frame)
        indices = frame.index + np.asarray(self.offsets)
        images = np.stack([self._read_image(drive, frame.side, int(i)) for i in indices])
        native_hw = (int(images.shape[1]), int(images.shape[2]))
        out_hw = self.size or native_hw
        return Sample(
            images=resize_images(images, out_hw), K=scale_intrinsics(calib.K, native_hw, out_hw),
            stamps_s=drive.stamps_s[indices], offsets=self.offsets,
            source=f"kitti_raw:{frame.drive} {frame.index} {frame.side}",
            depth_m=self._depth(drive, frame, calib, native_hw, out_hw),
            poses=self._poses(drive, indices, calib),
            pose_frame=POSE_FRAME_CAMERA if drive.has_oxts else "")

    # -- description --------------------------------------------------------------------------

    def describe(self) -> DatasetSummary:
        drives = sorted({f.drive for f in self.frames})
        native = self._calibration(self.frames[0]).image_size
        gt = []
        if self.load_depth and any(self._drive(f.drive, f.side).has_velodyne for f in self.frames):
            gt.append("depth_m")
        if any(self._drive(f.drive, f.side).has_oxts for f in self.frames):
            gt.append("poses")
        return DatasetSummary(
            kind=self.kind, path=str(self.root), samples=len(self),
            frames=sum(d.num_frames for d in self._drives.values()), offsets=self.offsets,
            native_size=native, size=self.size or native, ground_truth=tuple(gt),
            details={"drives": drives, "skipped_windows": self.skipped})


@lru_cache(maxsize=32)
def _cached_calibration(date_dir: str, camera: int) -> KittiCalibration:
    return load_calibration(Path(date_dir), camera)
