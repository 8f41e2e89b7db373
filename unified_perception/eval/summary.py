"""The report's Markdown summary: every metric beside its baseline, what is missing and why, files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from unified_perception.eval.prediction_bag import short_outputs_text
from unified_perception.eval.scoring import LATENCY_KEYS, REPORT_KEYS

HIGHER_IS_BETTER = {"a1", "a2", "a3", "miou", "pq", "sq", "rq", "pq_things", "pq_stuff", "iou",
                    "precision", "recall", "acc_strict", "acc_relaxed"}
UNITS = {"sq_rel": "m", "rmse": "m", "epe3d": "m", "ate_m": "m", "ate_sim3_m": "m",
         "rpe_trans_m": "m", "rpe_rot_deg": "deg", "rmse_deg": "deg", "mae_deg": "deg"}


@dataclass(frozen=True)
class SummaryContext:
    """What the summary says besides the numbers of metrics.json.

    baselines: task -> what its baseline predicts, e.g. ``"mean depth 14.2 m"``.
    missing: task -> why it has no score.
    notes: further lines (protocol, frames per task).
    images: report file names of the plots and montage, in display order, with a caption.
    """

    pred_bag: str
    gt_bag: str
    baselines: Mapping[str, str]
    missing: Mapping[str, str]
    notes: tuple[str, ...]
    images: tuple[tuple[str, str], ...]


def _number(value: object) -> str:
    if value is None:
        return "–"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _metric_label(key: str) -> str:
    arrow = "↑" if key in HIGHER_IS_BETTER else "↓"
    unit = f" ({UNITS[key]})" if key in UNITS else ""
    return f"{key}{unit} {arrow}"


def score_table(metrics: Mapping[str, object], context: SummaryContext) -> list[str]:
    """Markdown table rows: task, metric, model, baseline."""
    lines = ["| task | metric | model | baseline |", "|---|---|---|---|"]
    baselines: Mapping[str, object] = metrics.get("baselines") or {}  # type: ignore[assignment]
    for task, keys in REPORT_KEYS.items():
        model = metrics.get(task)
        if not isinstance(model, Mapping):
            lines.append(f"| {task} | – | missing | – |")
            continue
        base = baselines.get(task) if isinstance(baselines, Mapping) else None
        first = True
        for key in keys:
            if key == "per_class":
                continue
            base_value = base.get(key) if isinstance(base, Mapping) else None
            name = f"{task} (baseline: {context.baselines.get(task, '–')})" if first else ""
            lines.append(f"| {name} | {_metric_label(key)} | {_number(model.get(key))} | "
                         f"{_number(base_value)} |")
            first = False
    latency = metrics.get("latency_ms")
    if isinstance(latency, Mapping):
        for i, key in enumerate(LATENCY_KEYS):
            lines.append(f"| {'latency' if i == 0 else ''} | {key} (ms) ↓ | {_number(latency.get(key))} | – |")
    else:
        lines.append("| latency | – | missing | – |")
    return lines


def class_table(metrics: Mapping[str, object]) -> list[str]:
    """Per-class IoU rows, model and baseline (empty without semantic scores)."""
    semantic = metrics.get("semantic")
    if not isinstance(semantic, Mapping):
        return []
    baseline = (metrics.get("baselines") or {}).get("semantic") or {}  # type: ignore[union-attr]
    base_classes = baseline.get("per_class", {}) if isinstance(baseline, Mapping) else {}
    lines = ["| class | IoU model | IoU baseline |", "|---|---|---|"]
    for name, iou in semantic["per_class"].items():
        lines.append(f"| {name} | {_number(iou)} | {_number(base_classes.get(name))} |")
    return lines


def incomplete_outputs(frames: Mapping[str, Any]) -> str:
    """:func:`short_outputs_text` of a metrics.json ``frames`` entry ("" without its counts)."""
    out = frames.get("out")
    return short_outputs_text(frames.get("per_output") or {}, out) if isinstance(out, int) else ""


def render_summary(metrics: Mapping[str, object], context: SummaryContext) -> str:
    """The whole summary.md text."""
    frames: Mapping[str, int] = metrics["frames"]  # type: ignore[assignment]
    lines = ["# Evaluation report", "",
             f"- predictions: `{context.pred_bag}`", f"- ground truth: `{context.gt_bag}`",
             f"- frames: {frames['in']} in, {frames['out']} with outputs, {frames['dropped']} dropped"
             + incomplete_outputs(frames),
             *([f"- frames per output: " + ", ".join(f"{name} {n}" for name, n in
                                                     frames["per_output"].items())]
               if frames.get("per_output") else []),
             *(f"- {note}" for note in context.notes), "",
             "## Scores", "", "↑ higher is better, ↓ lower is better; – = undefined or not scored.", "",
             *score_table(metrics, context), ""]
    if context.missing:
        lines += ["## Not scored", "", *(f"- **{task}**: {why}" for task, why in context.missing.items()), ""]
    per_class = class_table(metrics)
    if per_class:
        lines += ["## Semantic IoU per class", "", *per_class, ""]
    if context.images:
        lines += ["## Figures", ""]
        lines += [f"![{caption}]({name})" + "\n" for name, caption in context.images]
    lines += ["Every number above is in `metrics.json`.", ""]
    return "\n".join(lines)
