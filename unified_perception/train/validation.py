"""Validation during training: run the model frame by frame over held-out sequences, exactly as the
car runs it (eval mode, temporal state carried from frame to frame), and score every task with the
metric functions of ``eval/metrics`` next to the trivial baselines.

The baselines predict, for every frame: the mean valid ground-truth depth of the validation set
(depth), its most frequent class (semantic; panoptic = that class as one segment), no motion
(motion mask), zero flow (scene flow), the identity (ego-motion: the car stands still) and the
mean steering angle. ``score`` is the mean over tasks of the model's error divided by the baseline's
error (lower is better; 1.0 = no better than the baseline), the figure that picks ``best.pt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from unified_perception.contract import CLASSES, IGNORE_ID, NUM_CLASSES, THING_CLASS_IDS, Task
from unified_perception.data.base import SequenceDataset
from unified_perception.data.sample import POSE_FRAME_CAMERA, Sample
from unified_perception.eval.metrics import (DepthAccumulator, MotionAccumulator,
                                             PanopticAccumulator, SceneFlowAccumulator,
                                             SemanticAccumulator, SteeringAccumulator,
                                             TrajectoryAccumulator)
from unified_perception.train.model import UnifiedModel

CLASS_NAMES = tuple(c.name for c in CLASSES)
DEPTH_CAP_M = 80.0


@dataclass
class TaskScores:
    """Accumulators of one predictor (the model or the baseline) over the validation set."""

    depth: DepthAccumulator
    semantic: SemanticAccumulator
    panoptic: PanopticAccumulator
    motion: MotionAccumulator
    scene_flow: SceneFlowAccumulator
    odometry: TrajectoryAccumulator
    steering: SteeringAccumulator

    @classmethod
    def empty(cls) -> "TaskScores":
        return cls(DepthAccumulator(1e-3, DEPTH_CAP_M, False),
                   SemanticAccumulator(NUM_CLASSES, CLASS_NAMES),
                   PanopticAccumulator(THING_CLASS_IDS, NUM_CLASSES, CLASS_NAMES),
                   MotionAccumulator(), SceneFlowAccumulator(), TrajectoryAccumulator(),
                   SteeringAccumulator())


@dataclass(frozen=True)
class FramePrediction:
    """One frame's predictions as numpy (None where the predictor lacks the task).

    depth_m ``[H, W]``; semantic, panoptic ``[H, W]`` int; motion ``[H, W]`` bool; scene_flow
    ``[H, W, 3]`` m; T_cam_prev_cam_cur ``[4, 4]``; steering_rad float; pair_valid bool.
    """

    depth_m: np.ndarray | None = None
    semantic: np.ndarray | None = None
    panoptic: np.ndarray | None = None
    motion: np.ndarray | None = None
    scene_flow: np.ndarray | None = None
    T_cam_prev_cam_cur: np.ndarray | None = None
    steering_rad: float | None = None
    pair_valid: bool = False


class SequenceScorer:
    """Feeds one predictor's frames of one sequence into :class:`TaskScores` (tracks its pose)."""

    def __init__(self, scores: TaskScores, motion_threshold: float = 0.5) -> None:
        self.scores, self.threshold = scores, motion_threshold
        self.T_odom_cam_pred: np.ndarray | None = None

    def update(self, pred: FramePrediction, gt: Sample) -> None:
        s = self.scores
        if pred.depth_m is not None and gt.depth_m is not None:
            s.depth.update(pred.depth_m, gt.depth_m)
        if pred.semantic is not None and gt.semantic is not None:
            s.semantic.update(pred.semantic, gt.semantic)
        if pred.panoptic is not None and gt.panoptic is not None:
            s.panoptic.update(pred.panoptic, gt.panoptic)
        if pred.steering_rad is not None and gt.steering_rad is not None:
            s.steering.update(pred.steering_rad, float(gt.steering_rad[gt.center]))
        if not pred.pair_valid:   # first frame of a sequence: no two-frame outputs
            self._start_trajectory(gt)
            return
        if pred.motion is not None and gt.motion_mask is not None:
            s.motion.update(pred.motion, gt.motion_mask)
        if pred.scene_flow is not None and gt.scene_flow is not None:
            valid = gt.depth_m > 0 if gt.depth_m is not None else np.ones(gt.size, bool)
            moving = gt.motion_mask if gt.motion_mask is not None else np.zeros(gt.size, bool)
            s.scene_flow.update(pred.scene_flow, gt.scene_flow, valid, moving)
        if (pred.T_cam_prev_cam_cur is not None and gt.poses is not None
                and gt.pose_frame == POSE_FRAME_CAMERA and self.T_odom_cam_pred is not None):
            self.T_odom_cam_pred = self.T_odom_cam_pred @ pred.T_cam_prev_cam_cur
            s.odometry.update(float(gt.stamps_s[gt.center]), self.T_odom_cam_pred,
                              gt.poses[gt.center])

    def _start_trajectory(self, gt: Sample) -> None:
        if gt.poses is not None and gt.pose_frame == POSE_FRAME_CAMERA:
            self.T_odom_cam_pred = gt.poses[gt.center].copy()
            self.scores.odometry.update(float(gt.stamps_s[gt.center]), self.T_odom_cam_pred,
                                        gt.poses[gt.center])


def model_predictions(model: UnifiedModel, frames: Sequence[Sample],
                      device: torch.device | str = "cpu") -> list[FramePrediction]:
    """Run ``model`` (eval mode, no grad) over consecutive frames with its temporal state."""
    was_training = model.training
    model.eval()
    preds, state = [], None
    has = set(model.tasks)
    with torch.no_grad():
        for sample in frames:
            image = torch.from_numpy(np.ascontiguousarray(sample.image))[None].to(device)
            out, state = model(image, state)
            pair = bool(out.pair_valid[0]) if out.pair_valid is not None else False
            preds.append(FramePrediction(
                depth_m=_np(out.depth_m, (0, 0)),
                semantic=_np(out.semantic, (0,)) if Task.SEMANTIC in has else None,
                panoptic=_np(out.panoptic, (0,)) if Task.PANOPTIC in has else None,
                motion=None if out.motion_prob is None or Task.MOTION not in has
                else _np(out.motion_prob, (0, 0)) > 0.5,
                scene_flow=None if out.scene_flow_m is None
                else _np(out.scene_flow_m, (0,)).transpose(1, 2, 0),
                T_cam_prev_cam_cur=_np(out.T_cam_prev_cam_cur, (0,)).astype(np.float64)
                if out.T_cam_prev_cam_cur is not None and Task.POSE in has else None,
                steering_rad=None if out.steering_rad is None else float(out.steering_rad[0, 0]),
                pair_valid=pair))
    model.train(was_training)
    return preds


def _np(tensor: torch.Tensor | None, index: tuple[int, ...]) -> np.ndarray | None:
    if tensor is None:
        return None
    return tensor[index].detach().float().cpu().numpy() if tensor.is_floating_point() \
        else tensor[index].detach().cpu().numpy()


@dataclass(frozen=True)
class BaselinePredictor:
    """The trivial predictions (see the module docstring), fitted on the validation ground truth."""

    mean_depth_m: float
    frequent_class: int
    mean_steering_rad: float

    @classmethod
    def fit(cls, sequences: Sequence[Sequence[Sample]]) -> "BaselinePredictor":
        depth_sum, depth_n, steering = 0.0, 0, []
        counts = np.zeros(NUM_CLASSES, np.int64)
        for frames in sequences:
            for s in frames:
                if s.depth_m is not None:
                    valid = (s.depth_m > 0) & (s.depth_m <= DEPTH_CAP_M)
                    depth_sum += float(s.depth_m[valid].sum())
                    depth_n += int(valid.sum())
                if s.semantic is not None:
                    labels = s.semantic[s.semantic != IGNORE_ID]
                    counts += np.bincount(labels.ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES]
                if s.steering_rad is not None:
                    steering.append(float(s.steering_rad[s.center]))
        return cls(depth_sum / max(depth_n, 1), int(np.argmax(counts)),
                   float(np.mean(steering)) if steering else 0.0)

    def predict(self, sample: Sample, first: bool) -> FramePrediction:
        h, w = sample.size
        return FramePrediction(
            depth_m=np.full((h, w), self.mean_depth_m, np.float32),
            semantic=np.full((h, w), self.frequent_class, np.int32),
            panoptic=np.full((h, w), self.frequent_class * 1000, np.int32),
            motion=np.zeros((h, w), bool), scene_flow=np.zeros((h, w, 3), np.float32),
            T_cam_prev_cam_cur=np.eye(4), steering_rad=self.mean_steering_rad, pair_valid=not first)


def load_frames(dataset: SequenceDataset, max_frames: int = 0) -> list[Sample]:
    """The first ``max_frames`` (0 = all) single-frame samples of a sequence, in order."""
    count = len(dataset) if max_frames <= 0 else min(max_frames, len(dataset))
    return [dataset[i] for i in range(count)]


def task_results(scores: TaskScores, tasks: Sequence[Task]) -> dict[str, Any]:
    """``{task group: metrics}`` for the tasks a model serves (the metrics.json keys)."""
    has = set(tasks)
    out: dict[str, Any] = {}
    if Task.DEPTH in has:
        out["depth"] = scores.depth.result()
    if Task.SEMANTIC in has:
        out["semantic"] = scores.semantic.result()
    if Task.PANOPTIC in has:
        out["panoptic"] = scores.panoptic.result()
    if Task.MOTION in has:
        out["motion"] = scores.motion.result()
    if Task.SCENE_FLOW in has:
        out["scene_flow"] = scores.scene_flow.result()
    if Task.POSE in has:
        out["odometry"] = scores.odometry.result()
    if Task.STEERING in has:
        out["steering"] = scores.steering.result()
    return out


def relative_errors(model: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float]:
    """Per task: the model's error / the baseline's error (lower is better, 1 = baseline)."""
    def ratio(a: float, b: float) -> float:
        return float(a / b) if b > 1e-12 else float("inf") if a > 1e-12 else 0.0

    table = {
        "depth": lambda m, b: ratio(m["abs_rel"], b["abs_rel"]),
        "semantic": lambda m, b: ratio(1 - m["miou"], 1 - b["miou"]),
        "panoptic": lambda m, b: ratio(1 - m["pq"], 1 - b["pq"]),
        "motion": lambda m, b: 1.0 - m["iou"],          # the baseline (no motion) has IoU 0
        "scene_flow": lambda m, b: ratio(m["epe3d"], b["epe3d"]),
        "odometry": lambda m, b: ratio(m["rpe_trans_m"], b["rpe_trans_m"]),
        "steering": lambda m, b: ratio(m["rmse_deg"], b["rmse_deg"]),
    }
    out = {}
    for task, fn in table.items():
        if task in model and task in baseline:
            try:
                value = fn(model[task], baseline[task])
            except (KeyError, TypeError):
                continue
            if np.isfinite(value):
                out[task] = value
    return out


@dataclass(frozen=True)
class ValidationResult:
    """Metrics of the model and the baselines, the per-task error ratios and their mean."""

    model: dict[str, Any]
    baseline: dict[str, Any]
    relative: dict[str, float]
    score: float
    frames: int

    def flat_scalars(self) -> dict[str, float]:
        """``{"val/depth/abs_rel": x, ...}`` for TensorBoard."""
        out = {"val/score": self.score}
        for task, metrics in self.model.items():
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and np.isfinite(value):
                    out[f"val/{task}/{key}"] = float(value)
        out.update({f"val/relative/{k}": v for k, v in self.relative.items()})
        return out


class Validator:
    """Holds the validation frames and the baseline's scores (computed once)."""

    def __init__(self, datasets: Sequence[SequenceDataset], max_frames: int = 0) -> None:
        self.sequences = [load_frames(d, max_frames) for d in datasets]
        if not any(self.sequences):
            raise ValueError("the validation data sets hold no frames")
        self.baseline_predictor = BaselinePredictor.fit(self.sequences)
        scores = TaskScores.empty()
        for frames in self.sequences:
            scorer = SequenceScorer(scores)
            for i, sample in enumerate(frames):
                scorer.update(self.baseline_predictor.predict(sample, i == 0), sample)
        self.baseline_scores = scores

    @property
    def frames(self) -> int:
        return sum(len(f) for f in self.sequences)

    def run(self, model: UnifiedModel, device: torch.device | str = "cpu",
            score_tasks: Sequence[str] | None = None) -> ValidationResult:
        """Score ``model`` (restored to its training mode afterwards); ``score`` averages the
        relative errors of ``score_tasks`` (task groups as in :func:`task_results`; None = all)."""
        scores = TaskScores.empty()
        for frames in self.sequences:
            scorer = SequenceScorer(scores)
            for pred, sample in zip(model_predictions(model, frames, device), frames):
                scorer.update(pred, sample)
        model_metrics = task_results(scores, model.tasks)
        baseline = task_results(self.baseline_scores, model.tasks)
        relative = relative_errors(model_metrics, baseline)
        scored = [v for k, v in relative.items() if score_tasks is None or k in score_tasks]
        score = float(np.mean(scored)) if scored else float("inf")
        return ValidationResult(model_metrics, baseline, relative, score, self.frames)
