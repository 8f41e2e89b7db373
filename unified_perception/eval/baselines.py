"""Trivial predictions each metric is set against, so a reader sees how much the model adds.

Per-pixel baselines are constant maps built from statistics of the ground-truth bag: its mean valid
depth, its most frequent class (panoptic: that class with instance 0), no motion, zero scene flow.
Ego-motion's baseline stays at the start pose (identity ego-motion); steering's predicts the ground
truth's mean angle. They are scored by the same accumulators, on the same frames, as the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from unified_perception.contract import IGNORE_ID, PANOPTIC_LABEL_DIVISOR
from unified_perception.eval.bag_frames import FrameMaps

NUM_LABELS = 256
"""mono8 class ids: the histogram of ground-truth classes has this many bins."""


@dataclass(frozen=True)
class GroundTruthPriors:
    """Statistics of a whole ground-truth bag that the baselines predict (None = not in the bag).

    mean_depth_m: mean of all valid ground-truth depths in ``(min_depth_m, max_depth_m]`` (m).
    most_frequent_class: the class id with the most labelled pixels (ignore id excluded).
    mean_steering_rad: mean ground-truth steering angle (rad, positive left).
    """

    mean_depth_m: float | None
    most_frequent_class: int | None
    mean_steering_rad: float | None


class PriorsAccumulator:
    """Running sums for :class:`GroundTruthPriors`: depth sum and count, a class histogram."""

    def __init__(self, min_depth_m: float, max_depth_m: float) -> None:
        self.min_depth_m, self.max_depth_m = min_depth_m, max_depth_m
        self.depth_sum, self.depth_count = 0.0, 0
        self.class_pixels = np.zeros(NUM_LABELS, dtype=np.int64)

    def add_depth(self, depth_m: np.ndarray) -> None:
        """``[H, W] float32`` ground-truth depth (m); invalid pixels (0, NaN, inf) are skipped."""
        depth = np.asarray(depth_m, dtype=np.float64)
        valid = (depth > self.min_depth_m) & (depth <= self.max_depth_m)
        self.depth_sum += float(depth[valid].sum())
        self.depth_count += int(np.count_nonzero(valid))

    def add_semantic(self, semantic: np.ndarray) -> None:
        """``[H, W] uint8`` ground-truth class ids."""
        self.class_pixels += np.bincount(np.asarray(semantic, dtype=np.uint8).ravel(),
                                         minlength=NUM_LABELS)

    def result(self, steering_rad: np.ndarray | None) -> GroundTruthPriors:
        """The priors; ``steering_rad`` ``[N]`` are all ground-truth angles of the bag (rad)."""
        labelled = self.class_pixels.copy()
        labelled[IGNORE_ID] = 0
        return GroundTruthPriors(
            mean_depth_m=self.depth_sum / self.depth_count if self.depth_count else None,
            most_frequent_class=int(np.argmax(labelled)) if labelled.any() else None,
            mean_steering_rad=float(np.mean(steering_rad)) if steering_rad is not None
            and steering_rad.size else None)


def ground_truth_priors(images: Iterable[tuple[str, np.ndarray]], steering_rad: np.ndarray | None,
                        min_depth_m: float, max_depth_m: float) -> GroundTruthPriors:
    """Priors from ``(key, array)`` ground-truth images (keys ``depth`` and ``semantic`` are used)."""
    acc = PriorsAccumulator(min_depth_m, max_depth_m)
    for key, array in images:
        if key == "depth":
            acc.add_depth(array)
        elif key == "semantic":
            acc.add_semantic(array)
    return acc.result(steering_rad)


def baseline_maps(pred: FrameMaps, gt: FrameMaps, priors: GroundTruthPriors) -> FrameMaps:
    """Baseline maps shaped like the ground truth, for the tasks the model predicted in this frame
    (so baseline and model are scored on the same frames)."""
    def wanted(name: str) -> np.ndarray | None:
        both = getattr(pred, name) is not None and getattr(gt, name) is not None
        return getattr(gt, name) if both else None

    depth, semantic, panoptic = wanted("depth"), wanted("semantic"), wanted("panoptic")
    motion, flow = wanted("motion_mask"), wanted("scene_flow")
    cls = priors.most_frequent_class
    return FrameMaps(
        depth=None if depth is None or priors.mean_depth_m is None
        else np.full(depth.shape, priors.mean_depth_m, dtype=np.float32),
        semantic=None if semantic is None or cls is None else np.full(semantic.shape, cls, np.uint8),
        panoptic=None if panoptic is None or cls is None
        else np.full(panoptic.shape, cls * PANOPTIC_LABEL_DIVISOR, np.int32),
        motion_mask=None if motion is None else np.zeros(motion.shape, dtype=bool),
        scene_flow=None if flow is None else np.zeros(flow.shape, dtype=np.float32))


def identity_trajectory(T_odom_start: np.ndarray, count: int) -> np.ndarray:
    """``[count, 4, 4]``: the start pose repeated (no ego-motion at all)."""
    return np.broadcast_to(np.asarray(T_odom_start, dtype=np.float64), (count, 4, 4)).copy()
