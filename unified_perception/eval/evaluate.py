"""Score a prediction bag against a ground-truth bag and write the report folder.

The report (``metrics.json``, ``summary.md``, PNG plots, ``montage.gif`` + ``montage.png``) is
written into a hidden temporary sibling of the report folder and renamed into place only when it
is complete, so a failure leaves nothing that looks like a report. ``replay`` calls
:func:`evaluate_bags`; ``unified-perception evaluate`` calls :func:`run_evaluation` with its options.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from tqdm import tqdm

from unified_perception import topics
from unified_perception.contract import CLASSES
from unified_perception.data.errors import DatasetError
from unified_perception.data.rosbag_topics import RosbagTopics, load_rosbag_topics, parse_rosbag_topics
from unified_perception.eval import report_plots
from unified_perception.eval.bag_frames import (
    IMAGE_SPECS, REPLAY_LATENCY_TOPIC, FramePairs, MatchedFrame, ValueSeries)
from unified_perception.eval.baselines import GroundTruthPriors, baseline_maps, ground_truth_priors
from unified_perception.eval.montage import MontageWriter
from unified_perception.eval.report_errors import EvaluationError
from unified_perception.eval.scoring import (
    PIXEL_TASKS, REPORT_KEYS, DepthRange, PixelScores, SteeringScores, TrajectoryScores,
    finite_or_none, score_latency, score_steering, score_trajectory)
from unified_perception.eval.summary import SummaryContext, render_summary

METRICS_FILE = "metrics.json"
SUMMARY_FILE = "summary.md"
PLOT_FILES: dict[str, str] = {
    "semantic": "semantic_iou.png", "depth": "depth_by_distance.png", "odometry": "trajectory.png",
    "steering": "steering.png", "latency": "latency.png"}
MONTAGE_GIF, MONTAGE_PNG = "montage.gif", "montage.png"


@dataclass(frozen=True)
class EvalOptions:
    """How to evaluate.

    topics: topic map of the ground-truth bag (a :class:`RosbagTopics`, a YAML path, a mapping, or
        None for the synthetic bags' topics).
    depth: the depth protocol (metric depth, cap 80 m, no median scaling by default).
    montage_max_frames: at most this many frames go into the GIF (evenly spread).
    figures: False writes ``metrics.json`` and ``summary.md`` only, without plots and montage
        (about half the time of a 100-frame evaluation; for sweeps and benchmarks).
    quiet: no progress bar.
    """

    topics: RosbagTopics | str | Path | Mapping[str, Any] | None = None
    depth: DepthRange = field(default_factory=DepthRange)
    montage_max_frames: int = 300
    figures: bool = True
    quiet: bool = False


def evaluate_bags(pred_bag: Path, gt_bag: Path, out_dir: Path, *,
                  topics: RosbagTopics | str | Path | Mapping[str, Any] | None = None,
                  quiet: bool = False, figures: bool = True) -> Path:
    """Evaluate ``pred_bag`` against ``gt_bag`` with the default protocol; returns the report folder.

    Raises :class:`EvaluationError` (one message saying what to do) for problems a user can cause.
    """
    return run_evaluation(pred_bag, gt_bag, out_dir, EvalOptions(topics=topics, quiet=quiet,
                                                                 figures=figures))


def run_evaluation(pred_bag: Path, gt_bag: Path, out_dir: Path, options: EvalOptions) -> Path:
    """Evaluate and write the report folder ``out_dir`` (must not exist, or be empty)."""
    out_dir = _check_out_dir(Path(out_dir))
    gt_topics = _topic_map(options.topics)
    with FramePairs(Path(pred_bag), Path(gt_bag), gt_topics) as pairs:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
        try:
            _write_report(pairs, options, staging)
            if out_dir.exists():
                out_dir.rmdir()             # checked empty above; a rename cannot replace a full one
            os.replace(staging, out_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return out_dir


def _check_out_dir(out_dir: Path) -> Path:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise EvaluationError(f"report folder '{out_dir}' already exists and is not empty: choose "
                              f"another --out or delete it")
    return out_dir


def _topic_map(topics: RosbagTopics | str | Path | Mapping[str, Any] | None) -> RosbagTopics:
    try:
        if isinstance(topics, RosbagTopics):
            return topics
        if isinstance(topics, Mapping):
            return parse_rosbag_topics(topics)
        return load_rosbag_topics(topics)
    except DatasetError as err:
        raise EvaluationError(str(err)) from None


@dataclass
class _Scores:
    """Everything scoring produced, for metrics.json, the summary and the plots."""

    model: PixelScores
    baseline: PixelScores
    priors: GroundTruthPriors
    trajectory: TrajectoryScores | None = None
    steering: SteeringScores | None = None
    latency_ms: np.ndarray | None = None
    gif_frames: int = 0


def _write_report(pairs: FramePairs, options: EvalOptions, folder: Path) -> None:
    scores = _score(pairs, options, folder)
    metrics = _metrics(pairs, scores)
    (folder / METRICS_FILE).write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    images = _plots(scores, metrics, folder) if options.figures else ()
    context = SummaryContext(
        pred_bag=str(pairs.pred.path), gt_bag=str(pairs.gt.path), baselines=_baseline_names(scores),
        missing=_missing(pairs, metrics), notes=_notes(pairs, scores, options), images=images)
    (folder / SUMMARY_FILE).write_text(render_summary(metrics, context))


def _score(pairs: FramePairs, options: EvalOptions, folder: Path) -> _Scores:
    depth = options.depth
    priors = ground_truth_priors(pairs.ground_truth_images(("depth", "semantic")),
                                 pairs.gt_steering_rad(), depth.min_m, depth.max_m)
    scores = _Scores(PixelScores(depth), PixelScores(depth), priors)
    steering = pairs.steering()
    if steering is not None and priors.mean_steering_rad is not None:
        scores.steering = _checked(lambda: score_steering(*steering, priors.mean_steering_rad), "steering")
    poses = pairs.poses()
    if poses is not None:
        scores.trajectory = _checked(lambda: score_trajectory(*poses), "odometry")
    latency = pairs.latency_ms()
    if latency is not None:
        scores.latency_ms = latency
    montage = (MontageWriter(folder / MONTAGE_GIF, folder / MONTAGE_PNG, len(pairs),
                             options.montage_max_frames) if options.figures else None)
    angle_pred, angle_gt = _by_stamp(steering[0] if steering else None), \
        _by_stamp(steering[1] if steering else None)
    for index, frame in enumerate(tqdm(pairs, total=len(pairs), desc="evaluate", unit="frame",
                                       disable=options.quiet)):
        _score_frame(scores, frame)
        if montage is None:
            continue
        title = f"frame {index + 1}/{len(pairs)}  t = {frame.stamp_ns * 1e-9:.3f} s  " \
                f"(top: prediction, bottom: ground truth)"
        montage.add(frame, angle_pred.get(frame.stamp_ns), angle_gt.get(frame.stamp_ns), depth.max_m, title)
    scores.gif_frames = montage.close() if montage is not None else 0
    return scores


def _score_frame(scores: _Scores, frame: MatchedFrame) -> None:
    try:
        scores.model.update(frame.pred, frame.gt)
        scores.baseline.update(baseline_maps(frame.pred, frame.gt, scores.priors), frame.gt)
    except ValueError as err:
        raise EvaluationError(f"frame at stamp {frame.stamp_ns} ns cannot be scored: {err}") from None


def _checked(score: Any, task: str) -> Any:
    try:
        return score()
    except ValueError as err:
        raise EvaluationError(f"{task} cannot be scored: {err}") from None


def _by_stamp(series: ValueSeries | None) -> dict[int, float]:
    if series is None:
        return {}
    return {int(s): float(v) for s, v in zip(series.stamp_ns, series.values)}


def _metrics(pairs: FramePairs, scores: _Scores) -> dict[str, Any]:
    """The metrics.json dictionary (fixed keys; null for tasks without a score)."""
    counts = pairs.counts()
    model, baseline = scores.model.results(), scores.baseline.results()
    for task, result in (("odometry", scores.trajectory), ("steering", scores.steering)):
        model[task] = result.model if result else None
        baseline[task] = result.baseline if result else None
    metrics: dict[str, Any] = {"frames": {"in": counts.frames_in, "out": counts.frames_out,
                                          "dropped": counts.dropped,
                                          "per_output": dict(counts.per_output)}}
    metrics.update({task: model[task] for task in REPORT_KEYS})
    metrics["latency_ms"] = score_latency(scores.latency_ms) if scores.latency_ms is not None else None
    metrics["baselines"] = {task: baseline[task] for task in REPORT_KEYS}
    return finite_or_none(metrics)  # type: ignore[return-value]


def _plots(scores: _Scores, metrics: Mapping[str, Any], folder: Path) -> tuple[tuple[str, str], ...]:
    """Draw the plots the scores allow; ``(file name, caption)`` of the images, montage included."""
    images = [(MONTAGE_PNG, "montage: camera | depth | semantic | instances | motion | scene flow | "
                            "steering (top: prediction, bottom: ground truth)"),
              (MONTAGE_GIF, "montage, every frame")]
    per_class = scores.model.semantic_per_class()
    if per_class:
        report_plots.plot_class_iou(per_class, scores.baseline.semantic_per_class(),
                                    folder / PLOT_FILES["semantic"])
        images.append((PLOT_FILES["semantic"], "semantic IoU per class"))
    by_distance = scores.model.depth_by_distance()
    if by_distance is not None:
        report_plots.plot_depth_by_distance(by_distance, scores.baseline.depth_by_distance(),
                                            folder / PLOT_FILES["depth"])
        images.append((PLOT_FILES["depth"], "depth error by distance"))
    if scores.trajectory is not None:
        t = scores.trajectory
        report_plots.plot_trajectory(t.gt, t.pred_aligned, t.baseline_poses, folder / PLOT_FILES["odometry"])
        images.append((PLOT_FILES["odometry"], "trajectory seen from above"))
    if scores.steering is not None:
        s = scores.steering
        report_plots.plot_steering(s.stamps_s, s.pred_rad, s.gt_rad, s.baseline_rad,
                                   folder / PLOT_FILES["steering"])
        images.append((PLOT_FILES["steering"], "steering vs ground truth"))
    if scores.latency_ms is not None:
        report_plots.plot_latency(scores.latency_ms, metrics["latency_ms"], folder / PLOT_FILES["latency"])
        images.append((PLOT_FILES["latency"], "latency histogram"))
    return tuple(images)


def _baseline_names(scores: _Scores) -> dict[str, str]:
    priors = scores.priors
    cls = priors.most_frequent_class
    cls_name = CLASSES[cls].name if cls is not None and cls < len(CLASSES) else str(cls)
    return {
        "depth": "mean depth" + (f" {priors.mean_depth_m:.2f} m" if priors.mean_depth_m else ""),
        "semantic": f"most frequent class, {cls_name}",
        "panoptic": f"{cls_name}, no instances",
        "motion": "nothing moves", "scene_flow": "zero flow",
        "odometry": "identity ego-motion",
        "steering": "mean angle" + (f" {np.degrees(priors.mean_steering_rad):+.2f} deg"
                                    if priors.mean_steering_rad is not None else ""),
    }


def _missing(pairs: FramePairs, metrics: Mapping[str, Any]) -> dict[str, str]:
    """Why each task without a score has none."""
    gt_topics = pairs.gt_topics
    reasons: dict[str, str] = {}
    for task, key in PIXEL_TASKS.items():
        if metrics[task] is not None:
            continue
        spec = IMAGE_SPECS[key]
        if key not in pairs.gt_image_topics:
            reasons[task] = f"the ground-truth bag has no `{getattr(gt_topics, key)}`"
        elif key not in pairs.pred_image_topics:
            reasons[task] = f"the prediction bag has no `{spec.name}` output ({spec.msg_type} {spec.encoding})"
        else:
            reasons[task] = "no frame has both a prediction and ground truth"
    series = {"odometry": (pairs.pred_odometry, gt_topics.odometry, "/" + topics.ODOMETRY.name),
              "steering": (pairs.pred_steering, gt_topics.steering,
                             "/" + topics.STEERING_ANGLE.name)}
    for task, (pred_topic, gt_topic, output) in series.items():
        if metrics[task] is not None:
            continue
        if gt_topic not in pairs.gt.index:
            reasons[task] = f"the ground-truth bag has no `{gt_topic}`"
        elif pred_topic not in pairs.pred.index:
            reasons[task] = f"the prediction bag has no `{output}`"
        else:
            reasons[task] = (f"no predicted value has a ground-truth value within "
                             f"{gt_topics.match_tolerance_s} s of its stamp")
    if metrics["latency_ms"] is None:
        reasons["latency"] = f"the prediction bag has no `{REPLAY_LATENCY_TOPIC}` (written by `replay`)"
    return reasons


def _notes(pairs: FramePairs, scores: _Scores, options: EvalOptions) -> tuple[str, ...]:
    depth = options.depth
    scaling = "per-image median scaling" if depth.median_scaling else "metric depth, no median scaling"
    summary = pairs.summary()
    notes = [f"depth protocol: {scaling}, ground truth in ({depth.min_m:g}, {depth.max_m:g}] m"]
    if summary:
        notes.append("replay: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    frames = {task: n for task, n in scores.model.frames.items() if n}
    if frames:
        notes.append("frames scored per task: " + ", ".join(f"{t} {n}" for t, n in frames.items()))
    notes.append(f"montage: {scores.gif_frames} frames in {MONTAGE_GIF}" if options.figures
                 else "figures: none (--no-figures)")
    return tuple(notes)
