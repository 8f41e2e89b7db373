"""The headline of an evaluation report: one main metric per task, model beside baseline, and the
minimum the shipped model must reach (issue 9's bar) with whether it does.

Read from a report's metrics.json (:mod:`unified_perception.eval.evaluate`); the demo prints it and
the model card carries it. Targets are either absolute (``mIoU >= 0.5``) or relative to the task's
baseline (``AbsRel <= 0.5 x`` the mean-depth baseline's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from unified_perception.eval.summary import incomplete_outputs


@dataclass(frozen=True)
class Target:
    """``value >= absolute`` (higher is better) / ``value <= absolute``, or ``value <= factor x
    baseline`` when ``of_baseline`` (lower is better)."""

    value: float
    of_baseline: bool = False


@dataclass(frozen=True)
class HeadlineMetric:
    """The main metric of one task: metrics.json ``task`` / ``key``, how to show it."""

    task: str
    key: str
    label: str
    higher_is_better: bool
    target: Target | None


HEADLINE: tuple[HeadlineMetric, ...] = (
    HeadlineMetric("depth", "abs_rel", "AbsRel", False, Target(0.5, of_baseline=True)),
    HeadlineMetric("semantic", "miou", "mIoU (classes present)", True, Target(0.5)),
    HeadlineMetric("panoptic", "pq", "PQ", True, Target(0.25)),
    HeadlineMetric("motion", "iou", "motion-mask IoU", True, Target(0.3)),
    HeadlineMetric("scene_flow", "epe3d", "EPE3D (m)", False, None),
    HeadlineMetric("odometry", "rpe_trans_m", "RPE translation (m)", False,
                   Target(0.5, of_baseline=True)),
    HeadlineMetric("steering", "rmse_deg", "RMSE (deg)", False, Target(0.6, of_baseline=True)),
)
"""One row per task, in report order. Targets: the minimum of issue 9 for the shipped model."""


@dataclass(frozen=True)
class HeadlineRow:
    """One task's main metric: model, baseline (None when missing), target text, met or not
    (None when there is no target or a value is missing)."""

    task: str
    label: str
    model: float | None
    baseline: float | None
    target: str
    met: bool | None


def _value(metrics: Mapping[str, Any], task: str, key: str) -> float | None:
    scores = metrics.get(task)
    value = scores.get(key) if isinstance(scores, Mapping) else None
    return float(value) if isinstance(value, (int, float)) else None


def _target_text(metric: HeadlineMetric) -> str:
    target = metric.target
    if target is None:
        return "–"
    sign = "≥" if metric.higher_is_better else "≤"
    return f"{sign} {target.value:g} × baseline" if target.of_baseline else f"{sign} {target.value:g}"


def _met(metric: HeadlineMetric, model: float | None, baseline: float | None) -> bool | None:
    target = metric.target
    if target is None or model is None:
        return None
    if target.of_baseline:
        return None if baseline is None else model <= target.value * baseline
    return model >= target.value if metric.higher_is_better else model <= target.value


def headline_rows(metrics: Mapping[str, Any]) -> list[HeadlineRow]:
    """The :data:`HEADLINE` rows of a report's metrics.json dictionary."""
    baselines = metrics.get("baselines") or {}
    rows = []
    for metric in HEADLINE:
        model = _value(metrics, metric.task, metric.key)
        baseline = _value(baselines, metric.task, metric.key)
        rows.append(HeadlineRow(metric.task, metric.label, model, baseline, _target_text(metric),
                                _met(metric, model, baseline)))
    return rows


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def headline_table(metrics: Mapping[str, Any]) -> list[str]:
    """Markdown rows: task, metric, model, baseline, target, met (yes / NO / –)."""
    lines = ["| task | metric | model | baseline | target | met |", "|---|---|---|---|---|---|"]
    for row in headline_rows(metrics):
        met = "–" if row.met is None else ("yes" if row.met else "NO")
        lines.append(f"| {row.task} | {row.label} | {_number(row.model)} | {_number(row.baseline)} "
                     f"| {row.target} | {met} |")
    return lines


def frames_line(metrics: Mapping[str, Any]) -> str:
    """``frames: 100 in, 100 scored, 0 dropped; latency p50 120 ms, p95 180 ms``."""
    frames = metrics.get("frames") or {}
    text = (f"frames: {frames.get('in', '?')} played, {frames.get('out', '?')} with outputs, "
            f"{frames.get('dropped', '?')} dropped" + incomplete_outputs(frames))
    latency = metrics.get("latency_ms")
    if isinstance(latency, Mapping):
        text += (f"; node latency per frame p50 {latency.get('p50')} ms, p95 {latency.get('p95')} ms")
    return text
