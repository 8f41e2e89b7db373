"""`unified-perception evaluate PRED_BAG --gt GT_BAG --out REPORT_DIR`: score a replay's predictions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from unified_perception.eval.evaluate import METRICS_FILE, EvalOptions, run_evaluation
from unified_perception.eval.report_errors import EvaluationError
from unified_perception.eval.scoring import DepthRange


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred_bag", type=Path, metavar="PRED_BAG",
                        help="prediction bag written by `unified-perception replay` (folder)")
    parser.add_argument("--gt", type=Path, required=True, metavar="GT_BAG",
                        help="bag with the ground truth (the bag that was replayed)")
    parser.add_argument("--out", type=Path, required=True, metavar="REPORT_DIR",
                        help="report folder to create (must not exist, or be empty)")
    parser.add_argument("--topics", type=Path, default=None,
                        help="topic map YAML of the ground-truth bag (default: the synthetic bags' "
                             "topics; see data/rosbag_topics_example.yaml)")
    parser.add_argument("--median-scaling", action="store_true",
                        help="scale each predicted depth map by median(gt) / median(pred) (for "
                             "scale-ambiguous models; default: metric depth as predicted)")
    parser.add_argument("--max-depth", type=float, default=80.0,
                        help="depth cap in m: ground truth beyond it is not scored (default 80)")
    parser.add_argument("--min-depth", type=float, default=1e-3,
                        help="ground truth at or below this depth (m) is not scored (default 0.001)")
    parser.add_argument("--montage-frames", type=int, default=300,
                        help="at most this many frames in montage.gif, evenly spread (default 300)")
    parser.add_argument("--no-figures", action="store_true",
                        help="metrics.json and summary.md only: no plots, no montage")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    prog = "unified-perception evaluate"
    if not 0.0 < args.min_depth < args.max_depth:
        print(f"{prog}: --min-depth and --max-depth need 0 < min < max, got {args.min_depth} and "
              f"{args.max_depth}", file=sys.stderr)
        return 2
    if args.montage_frames < 1:
        print(f"{prog}: --montage-frames must be at least 1, got {args.montage_frames}", file=sys.stderr)
        return 2
    options = EvalOptions(topics=args.topics, depth=DepthRange(args.min_depth, args.max_depth,
                                                               args.median_scaling),
                          montage_max_frames=args.montage_frames, figures=not args.no_figures,
                          quiet=args.quiet)
    try:
        report = run_evaluation(args.pred_bag, args.gt, args.out, options)
    except EvaluationError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 2
    metrics = json.loads((report / METRICS_FILE).read_text())
    frames = metrics["frames"]
    print(f"wrote the report to {report} ({frames['out']} of {frames['in']} frames scored): "
          + ", ".join(sorted(p.name for p in report.iterdir())))
    return 0
