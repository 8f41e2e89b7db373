"""The one sample type every reader yields: a window of consecutive frames with what ground truth exists.

All arrays are numpy. The window is given by integer ``offsets`` relative to the centre frame
(default ``(-1, 0, 1)``: frames t-1, t, t+1); per-pixel ground truth belongs to the centre frame,
per-frame values (stamps, poses, steering) to every frame of the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from unified_perception import topics
from unified_perception.contract import IGNORE_ID, PANOPTIC_LABEL_DIVISOR
from unified_perception.data.errors import DatasetConfigError

DEFAULT_OFFSETS: tuple[int, ...] = (-1, 0, 1)

POSE_FRAME_CAMERA = "camera"
"""``poses`` are ``T_odom_cam``: the camera optical frame (x right, y down, z forward) in odom."""
POSE_FRAME_BASE = topics.BASE_FRAME
"""``poses`` are ``T_odom_base``: the vehicle base frame (REP 103: x forward, y left, z up) in odom."""

PANOPTIC_IGNORE = IGNORE_ID * PANOPTIC_LABEL_DIVISOR
"""Panoptic value of pixels without a label (train id 255, instance 0)."""

GROUND_TRUTH_FIELDS: tuple[str, ...] = (
    "depth_m", "semantic", "instances", "panoptic", "motion_mask", "scene_flow", "poses",
    "steering_rad")
"""Names of the optional ground-truth fields of :class:`Sample` (None where a data set lacks them)."""

PER_PIXEL_FIELDS: tuple[str, ...] = (
    "depth_m", "semantic", "instances", "panoptic", "motion_mask", "scene_flow")


@dataclass
class Sample:
    """A window of ``T`` consecutive frames of one camera.

    Attributes:
        images: ``[T, H, W, 3] uint8`` RGB, in window order (``offsets``).
        K: ``[3, 3] float64`` pinhole intrinsics in pixels of the returned ``H x W`` (pixel centres
            at integer coordinates).
        stamps_s: ``[T] float64`` capture time of each frame (s; epoch for recordings, nominal for
            Cityscapes).
        offsets: ``T`` frame offsets relative to the centre frame; ``offsets[center]`` is 0.
        source: where the sample came from (data set kind, file, frame), for logs and debugging.
        depth_m: ``[H, W] float32`` metric depth along optical z of the centre frame, 0 = no value.
        semantic: ``[H, W] uint8`` train ids (``contract.CLASSES``), 255 = ignore.
        instances: ``[H, W] int32`` instance id, unique per image, 0 = no instance.
        panoptic: ``[H, W] int32`` ``train_id * 1000 + instance`` (``PANOPTIC_IGNORE`` = no label).
        motion_mask: ``[H, W] bool`` True where the point moves independently of the ego vehicle.
        scene_flow: ``[H, W, 3] float32`` independent 3D motion of each pixel's point between t-1
            and t in the optical frame of the centre frame t (m).
        poses: ``[T, 4, 4] float64`` pose of each frame in odom; ``pose_frame`` says whether it is
            ``T_odom_cam`` or ``T_odom_base``.
        pose_frame: :data:`POSE_FRAME_CAMERA` or :data:`POSE_FRAME_BASE` ("" without poses).
        steering_rad: ``[T] float32`` steering angle of each frame (rad, positive left).
    """

    images: np.ndarray
    K: np.ndarray
    stamps_s: np.ndarray
    offsets: tuple[int, ...]
    source: str
    depth_m: np.ndarray | None = None
    semantic: np.ndarray | None = None
    instances: np.ndarray | None = None
    panoptic: np.ndarray | None = None
    motion_mask: np.ndarray | None = None
    scene_flow: np.ndarray | None = None
    poses: np.ndarray | None = None
    pose_frame: str = ""
    steering_rad: np.ndarray | None = None

    @property
    def center(self) -> int:
        """Index of the centre frame (offset 0) in the window."""
        return self.offsets.index(0)

    @property
    def image(self) -> np.ndarray:
        """``[H, W, 3] uint8`` RGB of the centre frame."""
        return self.images[self.center]

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the images (pixels)."""
        return int(self.images.shape[1]), int(self.images.shape[2])

    def available(self) -> tuple[str, ...]:
        """Names of the ground-truth fields this sample carries."""
        return tuple(name for name in GROUND_TRUTH_FIELDS if getattr(self, name) is not None)


def check_offsets(offsets: Sequence[int]) -> tuple[int, ...]:
    """Validate window offsets: distinct integers in increasing order that include 0."""
    try:
        values = tuple(int(o) for o in offsets)
    except (TypeError, ValueError):
        raise DatasetConfigError(
            f"offsets must be a list of integers such as [-1, 0, 1], got {offsets!r}") from None
    if not values or 0 not in values or list(values) != sorted(set(values)):
        raise DatasetConfigError(
            f"offsets must be distinct increasing integers that include 0 (the centre frame), "
            f"e.g. [-1, 0, 1], got {list(values)}")
    return values


def check_size(size: Sequence[int] | None) -> tuple[int, int] | None:
    """Validate an output size ``(H, W)`` in pixels (None = native size)."""
    if size is None:
        return None
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        raise DatasetConfigError(f"size must be (height, width) in pixels, got {size!r}") from None
    if height <= 0 or width <= 0:
        raise DatasetConfigError(f"size must be positive (height, width), got {(height, width)}")
    return height, width
