"""Validation during training: run the model frame by frame over held-out sequences, exactly as the
car runs it (eval mode, temporal state carried from frame to frame), and score every task with the
same pieces as the evaluation report (``eval/scoring``, ``eval/baselines``, ``eval/metrics``),
next to the same trivial baselines: the validation set's mean depth, its most frequent class, no
motion, zero flow, identity ego-motion (the car stands still) and its mean steering angle.

``score`` is the geometric mean over tasks of the model's error divided by the baseline's error
(lower is better; 1.0 = no better than the baseline): the figure that picks ``best.pt``. Geometric,
so that every task's relative change counts alike: the tasks' ratios differ tenfold (depth AbsRel
about 0.09 of the mean-depth baseline's, 1 - PQ about 0.6 of the baseline's), and in an arithmetic
mean a 50 % worse depth moved the score as little as a 1 % worse PQ (a chain run whose student
ended with AbsRel 0.135 instead of 0.094 had the better arithmetic score).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from unified_perception.contract import Task
from unified_perception.data.base import SequenceDataset
from unified_perception.data.sample import POSE_FRAME_CAMERA, Sample
from unified_perception.eval.bag_frames import FrameMaps
from unified_perception.eval.baselines import GroundTruthPriors, baseline_maps
from unified_perception.eval.baselines import ground_truth_priors as report_priors
from unified_perception.eval.metrics import SteeringAccumulator, TrajectoryAccumulator
from unified_perception.eval.scoring import DepthRange, PixelScores
from unified_perception.train.model import UnifiedModel

DEPTH_RANGE = DepthRange(1e-3, 80.0, False)
"""Metric depth, no median scaling, ground truth capped at 80 m (the report's default protocol)."""


@dataclass(frozen=True)
class FramePrediction:
    """One frame's predictions: per-pixel maps, ``T_cam_prev_cam_cur`` ``[4, 4]``, steering (rad)
    and whether the state held a previous frame (two-frame outputs are meaningless otherwise)."""

    maps: FrameMaps
    T_cam_prev_cam_cur: np.ndarray | None = None
    steering_rad: float | None = None
    pair_valid: bool = False


def ground_truth_maps(sample: Sample) -> FrameMaps:
    """The centre frame's ground truth as :class:`FrameMaps`."""
    return FrameMaps(depth=sample.depth_m, semantic=sample.semantic, instances=sample.instances,
                     panoptic=sample.panoptic, motion_mask=sample.motion_mask,
                     scene_flow=sample.scene_flow)


class PredictorScores:
    """Every task's accumulators for one predictor (the model or the baseline)."""

    def __init__(self) -> None:
        self.pixels = PixelScores(DEPTH_RANGE)
        self.trajectories: list[TrajectoryAccumulator] = []   # one per sequence
        self.steering = SteeringAccumulator()

    def odometry(self) -> dict[str, float] | None:
        """Trajectory metrics of every sequence with 3+ poses, averaged weighted by pose count
        (each sequence is aligned on its own: stamps and odom frames differ between drives)."""
        scored = [(acc.result(), len(acc.trajectories()[0])) for acc in self.trajectories
                  if len(acc.trajectories()[0]) >= 3]
        if not scored:
            return None
        total = sum(n for _, n in scored)
        return {key: float(sum(r[key] * n for r, n in scored) / total) for key in scored[0][0]}

    def results(self, tasks: Sequence[Task]) -> dict[str, Any]:
        """``{task group: metrics}`` for the tasks a model serves (the metrics.json groups)."""
        has = set(tasks)
        pixels = self.pixels.results()
        groups = {"depth": Task.DEPTH, "semantic": Task.SEMANTIC, "panoptic": Task.PANOPTIC,
                  "motion": Task.MOTION, "scene_flow": Task.SCENE_FLOW}
        out = {name: pixels[name] for name, task in groups.items()
               if task in has and pixels[name] is not None}
        odometry = self.odometry() if Task.POSE in has else None
        if odometry is not None:
            out["odometry"] = odometry
        if Task.STEERING in has and self.steering.count:
            out["steering"] = self.steering.result()
        return out


class SequenceScorer:
    """Feeds one predictor's frames of one sequence into :class:`PredictorScores`, chaining its
    ego-motion into a trajectory that starts at the ground truth's first pose."""

    def __init__(self, scores: PredictorScores) -> None:
        self.scores = scores
        self.trajectory = TrajectoryAccumulator()
        scores.trajectories.append(self.trajectory)
        self.T_odom_cam: np.ndarray | None = None

    def update(self, pred: FramePrediction, gt: Sample) -> None:
        maps = pred.maps
        if not pred.pair_valid:   # no previous frame: two-frame outputs are not scored
            maps = FrameMaps(depth=maps.depth, semantic=maps.semantic, instances=maps.instances,
                             panoptic=maps.panoptic)
        self.scores.pixels.update(maps, ground_truth_maps(gt))
        if pred.steering_rad is not None and gt.steering_rad is not None:
            self.scores.steering.update(pred.steering_rad, float(gt.steering_rad[gt.center]))
        if gt.poses is None or gt.pose_frame != POSE_FRAME_CAMERA or pred.T_cam_prev_cam_cur is None:
            return
        T_gt = gt.poses[gt.center]
        if not pred.pair_valid or self.T_odom_cam is None:
            self.T_odom_cam = T_gt.copy()
        else:
            self.T_odom_cam = self.T_odom_cam @ pred.T_cam_prev_cam_cur
        self.trajectory.update(float(gt.stamps_s[gt.center]), self.T_odom_cam, T_gt)


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
            maps = FrameMaps(
                depth=_np(out.depth_m, (0, 0)),
                semantic=_np(out.semantic, (0,), np.uint8) if Task.SEMANTIC in has else None,
                instances=_np(out.instances, (0,), np.int32) if Task.INSTANCE in has else None,
                panoptic=_np(out.panoptic, (0,), np.int32) if Task.PANOPTIC in has else None,
                motion_mask=None if out.motion_prob is None or Task.MOTION not in has
                else _np(out.motion_prob, (0, 0)) > 0.5,
                scene_flow=None if out.scene_flow_m is None or Task.SCENE_FLOW not in has
                else _np(out.scene_flow_m, (0,)).transpose(1, 2, 0))
            preds.append(FramePrediction(
                maps,
                T_cam_prev_cam_cur=_np(out.T_cam_prev_cam_cur, (0,), np.float64)
                if out.T_cam_prev_cam_cur is not None and Task.POSE in has else None,
                steering_rad=None if out.steering_rad is None else float(out.steering_rad[0, 0]),
                pair_valid=out.pair_valid is not None and bool(out.pair_valid[0])))
    model.train(was_training)
    return preds


def _np(tensor: torch.Tensor | None, index: tuple[int, ...],
        dtype: type = np.float32) -> np.ndarray | None:
    return None if tensor is None else tensor[index].detach().cpu().numpy().astype(dtype)


def baseline_prediction(sample: Sample, priors: GroundTruthPriors, first: bool) -> FramePrediction:
    """The trivial predictor's frame (see the module docstring)."""
    gt = ground_truth_maps(sample)
    return FramePrediction(baseline_maps(gt, gt, priors), np.eye(4), priors.mean_steering_rad,
                           pair_valid=not first)


def ground_truth_priors(sequences: Sequence[Sequence[Sample]]) -> GroundTruthPriors:
    """Mean depth, most frequent class and mean steering of the validation ground truth."""
    frames = [s for seq in sequences for s in seq]
    images = ((key, array) for s in frames
              for key, array in (("depth", s.depth_m), ("semantic", s.semantic)) if array is not None)
    steering = [float(s.steering_rad[s.center]) for s in frames if s.steering_rad is not None]
    return report_priors(images, np.asarray(steering) if steering else None,
                         DEPTH_RANGE.min_m, DEPTH_RANGE.max_m)


def load_frames(dataset: SequenceDataset, max_frames: int = 0) -> list[Sample]:
    """The first ``max_frames`` (0 = all) single-frame samples of a sequence, in order."""
    count = len(dataset) if max_frames <= 0 else min(max_frames, len(dataset))
    return [dataset[i] for i in range(count)]


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
            value = fn(model[task], baseline[task])
            if np.isfinite(value):
                out[task] = value
    return out


MIN_RELATIVE_ERROR = 1e-3
"""Floor of a task's error ratio in :func:`overall_score` (a perfect task would make the geometric
mean 0 whatever the others do)."""


def overall_score(relative: dict[str, float], tasks: Sequence[str] | None = None) -> float:
    """Geometric mean of the error ratios ``relative`` (task -> model error / baseline error) of
    ``tasks`` (None: all), each floored at :data:`MIN_RELATIVE_ERROR`; inf when none is scored."""
    scored = [v for k, v in relative.items() if tasks is None or k in tasks]
    if not scored:
        return float("inf")
    return float(np.exp(np.mean(np.log(np.maximum(scored, MIN_RELATIVE_ERROR)))))


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
        self.priors = ground_truth_priors(self.sequences)
        self.baseline_scores = PredictorScores()
        for frames in self.sequences:
            scorer = SequenceScorer(self.baseline_scores)
            for i, sample in enumerate(frames):
                scorer.update(baseline_prediction(sample, self.priors, i == 0), sample)

    @property
    def frames(self) -> int:
        return sum(len(f) for f in self.sequences)

    def run(self, model: UnifiedModel, device: torch.device | str = "cpu",
            score_tasks: Sequence[str] | None = None) -> ValidationResult:
        """Score ``model`` (restored to its training mode afterwards); ``score`` is the geometric
        mean of the relative errors of ``score_tasks`` (metrics.json groups; None = all)."""
        scores = PredictorScores()
        for frames in self.sequences:
            scorer = SequenceScorer(scores)
            for pred, sample in zip(model_predictions(model, frames, device), frames):
                scorer.update(pred, sample)
        model_metrics = scores.results(model.tasks)
        baseline = self.baseline_scores.results(model.tasks)
        relative = relative_errors(model_metrics, baseline)
        return ValidationResult(model_metrics, baseline, relative, overall_score(relative, score_tasks),
                                self.frames)
