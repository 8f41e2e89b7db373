"""The report's PNG plots, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Each function draws one figure from numbers the scoring already computed and writes it to ``path``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from unified_perception.eval.metrics import DepthByDistance

MODEL_COLOR, BASELINE_COLOR, GT_COLOR = "tab:blue", "tab:gray", "tab:green"


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_class_iou(model: Mapping[str, float], baseline: Mapping[str, float], path: Path) -> None:
    """Bars of per-class IoU (classes present in the ground truth), model beside baseline."""
    names = list(model)
    x = np.arange(len(names))
    fig = Figure(figsize=(max(6.0, 0.55 * len(names) + 2.0), 4.0))
    ax = fig.add_subplot()
    ax.bar(x - 0.2, [model[n] for n in names], 0.4, label="model", color=MODEL_COLOR)
    ax.bar(x + 0.2, [baseline.get(n, 0.0) for n in names], 0.4, label="most frequent class",
           color=BASELINE_COLOR)
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("IoU")
    ax.set_title("Semantic segmentation: IoU per class")
    ax.legend()
    _save(fig, path)


def plot_depth_by_distance(model: DepthByDistance, baseline: DepthByDistance | None, path: Path) -> None:
    """AbsRel per ground-truth distance bin (pixel mean), model and mean-depth baseline."""
    edges = model.bin_edges_m
    centres = 0.5 * (edges[:-1] + edges[1:])
    widths = np.diff(edges)
    fig = Figure(figsize=(7.0, 4.0))
    ax = fig.add_subplot()
    ax.bar(centres - 0.2 * widths, model.abs_rel, 0.4 * widths, label="model", color=MODEL_COLOR)
    if baseline is not None:
        ax.bar(centres + 0.2 * widths, baseline.abs_rel, 0.4 * widths, label="mean depth",
               color=BASELINE_COLOR)
    ax.set_xticks(edges)
    ax.set_xlabel("ground-truth depth (m)")
    ax.set_ylabel("AbsRel")
    ax.set_title("Depth error by distance")
    counts = ax.twinx()
    counts.plot(centres, model.counts, "k.:", label="pixels")
    counts.set_ylabel("pixels per bin (dotted)")
    ax.legend(loc="upper center")
    _save(fig, path)


def plot_trajectory(gt: np.ndarray, pred: np.ndarray, baseline: np.ndarray, path: Path) -> None:
    """Top view (x, y in odom, m) of ``[N, 4, 4]`` true, predicted (start-aligned) and baseline poses."""
    fig = Figure(figsize=(6.0, 6.0))
    ax = fig.add_subplot()
    ax.plot(gt[:, 0, 3], gt[:, 1, 3], "-", color=GT_COLOR, linewidth=5, alpha=0.5, label="ground truth")
    ax.plot(pred[:, 0, 3], pred[:, 1, 3], "-", color=MODEL_COLOR, label="model")
    ax.plot(baseline[:1, 0, 3], baseline[:1, 1, 3], "o", color=BASELINE_COLOR,
            label="identity ego-motion (start pose)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x (m, odom)")
    ax.set_ylabel("y (m, odom)")
    ax.set_title("Trajectory seen from above")
    ax.legend()
    _save(fig, path)


def plot_steering(stamps_s: np.ndarray, pred_rad: np.ndarray, gt_rad: np.ndarray, baseline_rad: float,
                  path: Path) -> None:
    """Steering angle (deg) over time: ground truth, model and the mean-angle baseline."""
    t = stamps_s - stamps_s[0]
    fig = Figure(figsize=(8.0, 3.5))
    ax = fig.add_subplot()
    ax.plot(t, np.degrees(gt_rad), "-", color=GT_COLOR, linewidth=5, alpha=0.5, label="ground truth")
    ax.plot(t, np.degrees(pred_rad), "-", color=MODEL_COLOR, label="model")
    ax.axhline(math.degrees(baseline_rad), color=BASELINE_COLOR, linestyle="--", label="mean angle")
    ax.set_xlabel("time since the first frame (s)")
    ax.set_ylabel("steering (deg, + left)")
    ax.set_title("Steering vs ground truth")
    ax.legend()
    _save(fig, path)


def plot_latency(latency_ms: np.ndarray, percentiles: Mapping[str, float | None], path: Path) -> None:
    """Histogram of per-frame latency (ms) with the p50 / p95 / p99 lines."""
    fig = Figure(figsize=(7.0, 3.5))
    ax = fig.add_subplot()
    ax.hist(latency_ms, bins=min(50, max(5, latency_ms.size // 4)), color=MODEL_COLOR)
    for (name, value), style in zip(percentiles.items(), ("-", "--", ":")):
        if value is not None:
            ax.axvline(value, color="k", linestyle=style, label=f"{name} {value:.1f} ms")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("frames")
    ax.set_title("Inference latency per frame")
    ax.legend()
    _save(fig, path)
