"""The accumulators of every task for one predictor (the model or its baseline), fed frame by frame.

Per-pixel tasks are scored on the frames where both the prediction and the ground truth exist;
ego-motion on the poses matched by stamp, the first predicted pose moved onto the ground truth's
(``T_align = T_gt_0 @ inv(T_pred_0)``, so both trajectories start together); steering on the
matched angles. Each task's ``result`` keeps the keys of :data:`REPORT_KEYS` (NaN where undefined).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from unified_perception.contract import CLASSES, NUM_CLASSES, THING_CLASS_IDS
from unified_perception.eval.bag_frames import FrameMaps, PoseSeries, ValueSeries
from unified_perception.eval.baselines import identity_trajectory
from unified_perception.eval.metrics import (
    DEPTH_METRIC_NAMES, DepthAccumulator, DepthByDistance, LatencyAccumulator, MotionAccumulator,
    PanopticAccumulator, SceneFlowAccumulator, SemanticAccumulator, SteeringAccumulator,
    TrajectoryAccumulator)

REPORT_KEYS: dict[str, tuple[str, ...]] = {
    "depth": DEPTH_METRIC_NAMES,
    "semantic": ("miou", "per_class"),
    "panoptic": ("pq", "sq", "rq", "pq_things", "pq_stuff"),
    "motion": ("iou", "precision", "recall"),
    "scene_flow": ("epe3d", "acc_strict", "acc_relaxed", "outliers"),
    "odometry": ("ate_m", "ate_sim3_m", "rpe_trans_m", "rpe_rot_deg"),
    "steering": ("rmse_deg", "mae_deg"),
}
"""Tasks scored against ground truth (each with a baseline) and the keys metrics.json keeps."""

LATENCY_KEYS: tuple[str, ...] = ("p50", "p95", "p99")
"""Latency percentiles metrics.json keeps (ms)."""

PIXEL_TASKS: dict[str, str] = {"depth": "depth", "semantic": "semantic", "panoptic": "panoptic",
                               "motion": "motion_mask", "scene_flow": "scene_flow"}
"""Per-pixel task -> the :class:`FrameMaps` field it scores."""


@dataclass(frozen=True)
class DepthRange:
    """The depth protocol: ground truth in ``(min_m, max_m]`` is scored; optional median scaling."""

    min_m: float = 1e-3
    max_m: float = 80.0
    median_scaling: bool = False


class PixelScores:
    """Accumulators of the per-pixel tasks for one predictor, and how many frames each one saw."""

    def __init__(self, depth_range: DepthRange) -> None:
        names = [c.name for c in CLASSES]
        self.depth = DepthAccumulator(depth_range.min_m, depth_range.max_m, depth_range.median_scaling)
        self.semantic = SemanticAccumulator(NUM_CLASSES, names)
        self.panoptic = PanopticAccumulator(THING_CLASS_IDS, NUM_CLASSES, names)
        self.motion = MotionAccumulator()
        self.scene_flow = SceneFlowAccumulator()
        self.frames = dict.fromkeys(PIXEL_TASKS, 0)

    def update(self, pred: FrameMaps, gt: FrameMaps) -> None:
        """Add one frame; tasks missing from ``pred`` or ``gt`` are skipped."""
        for task, name in PIXEL_TASKS.items():
            predicted, true = getattr(pred, name), getattr(gt, name)
            if predicted is None or true is None:
                continue
            if task == "scene_flow":
                self.scene_flow.update(predicted, true, flow_valid(gt), gt.motion_mask)
            else:
                getattr(self, task).update(predicted, true)
            self.frames[task] += 1

    def results(self) -> dict[str, dict | None]:
        """``task -> {metric: value}`` with the :data:`REPORT_KEYS`; None for a task never scored."""
        full = {"depth": self.depth.result, "semantic": self.semantic.result,
                "panoptic": self.panoptic.result, "motion": self.motion.result,
                "scene_flow": self.scene_flow.result}
        return {task: select(task, full[task]()) if self.frames[task] else None for task in PIXEL_TASKS}

    def depth_by_distance(self) -> DepthByDistance | None:
        return self.depth.by_distance() if self.frames["depth"] else None

    def semantic_per_class(self) -> dict[str, float]:
        return dict(self.semantic.result()["per_class"]) if self.frames["semantic"] else {}


def flow_valid(gt: FrameMaps) -> np.ndarray:
    """``[H, W] bool``: pixels with finite ground-truth flow and, where depth is known, a surface
    (sky has no point to move)."""
    valid = np.all(np.isfinite(gt.scene_flow), axis=-1)
    if gt.depth is not None:
        valid &= gt.depth > 0
    return valid


def select(task: str, result: dict) -> dict:
    """The :data:`REPORT_KEYS` of ``task`` from an accumulator's result."""
    return {key: result[key] for key in REPORT_KEYS[task]}


@dataclass(frozen=True)
class TrajectoryScores:
    """Ego-motion results and the trajectories for the plot (``[N, 4, 4]`` T_odom_base)."""

    model: dict
    baseline: dict
    stamps_s: np.ndarray
    gt: np.ndarray
    pred_aligned: np.ndarray
    baseline_poses: np.ndarray


def start_aligned(poses_pred: np.ndarray, poses_gt: np.ndarray) -> np.ndarray:
    """``[N, 4, 4]`` predicted poses moved rigidly so that the first one is the true first pose
    (``T_gt_0 @ inv(T_pred_0) @ T_pred_i``): both trajectories start together."""
    return poses_gt[0] @ np.linalg.inv(poses_pred[0]) @ poses_pred


def score_trajectory(pred: PoseSeries, gt: PoseSeries) -> TrajectoryScores:
    """Score predicted against true poses (paired by index), and the identity baseline."""
    aligned = start_aligned(pred.T, gt.T)
    still = identity_trajectory(gt.T[0], len(gt.T))
    stamps_s = gt.stamp_ns.astype(np.float64) * 1e-9
    model_acc, baseline_acc = TrajectoryAccumulator(), TrajectoryAccumulator()
    for stamp, T_pred, T_still, T_gt in zip(stamps_s, aligned, still, gt.T):
        model_acc.update(stamp, T_pred, T_gt)
        baseline_acc.update(stamp, T_still, T_gt)
    return TrajectoryScores(select("odometry", model_acc.result()),
                            select("odometry", baseline_acc.result()),
                            stamps_s, gt.T, aligned, still)


@dataclass(frozen=True)
class SteeringScores:
    """Steering results and the series for the plot (s, rad)."""

    model: dict
    baseline: dict
    stamps_s: np.ndarray
    pred_rad: np.ndarray
    gt_rad: np.ndarray
    baseline_rad: float


def score_steering(pred: ValueSeries, gt: ValueSeries, mean_gt_rad: float) -> SteeringScores:
    """Score predicted against true angles (paired by index) and the constant ``mean_gt_rad``."""
    model_acc, baseline_acc = SteeringAccumulator(), SteeringAccumulator()
    model_acc.update(pred.values, gt.values)
    baseline_acc.update(np.full(gt.values.shape, mean_gt_rad), gt.values)
    return SteeringScores(select("steering", model_acc.result()), select("steering", baseline_acc.result()),
                          gt.stamp_ns.astype(np.float64) * 1e-9, pred.values, gt.values, mean_gt_rad)


def score_latency(latency_ms: np.ndarray) -> dict[str, float]:
    """``{"p50", "p95", "p99"}`` (ms) of the replay's per-frame latencies."""
    acc = LatencyAccumulator()
    acc.update(latency_ms)
    return {key: acc.result()[key] for key in LATENCY_KEYS}


def finite_or_none(value: object) -> object:
    """NaN / inf -> None (JSON null), recursively through dicts; numbers become plain floats."""
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
