"""`unified-perception replay BAG --model M --out PRED_BAG`: run a bag through the node's runtime.

In-process by default (every frame, deterministic, a progress bar); ``--live`` plays the bag's
camera through the real node (a subprocess on its own ROS domain, on loopback) and records its
outputs. Either way the prediction bag (:mod:`unified_perception.eval.prediction_bag`) holds the
node's outputs and the replay's timing; when the input bag carries ground truth (``/gt/...``) the
evaluation report is written next to it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from unified_perception.bag_output import BagOutputError, check_output
from unified_perception.contract import ContractError
from unified_perception.eval.prediction_bag import ReplayCounts, open_prediction_bag
from unified_perception.eval.replay_input import InputBag, mount_as_recorded
from unified_perception.eval.replay_offline import OfflineReplay, replay_offline
from unified_perception.eval.replay_settings import ReplayError, ReplaySettings, load_settings
from unified_perception.runtime.engine import EngineConfig, InferenceEngine, ModelLoadError

PROG = "unified-perception replay"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", type=Path, help="input bag folder (MCAP or sqlite3)")
    parser.add_argument("--model", type=Path, required=True, help="exported ONNX model")
    parser.add_argument("--out", type=Path, required=True,
                        help="prediction bag to create: folder OUT/ with OUT_0.mcap (must not exist)")
    parser.add_argument("--topics", type=Path, default=None,
                        help="topic map YAML of the input bag (see data/rosbag_topics_example.yaml); "
                             "default: the synthetic bags' topics")
    parser.add_argument("--params", type=Path, default=None,
                        help="the node's params YAML (default: the package's config/car.yaml)")
    parser.add_argument("--camera-mount", choices=("bag", "params"), default="bag",
                        help="where the camera sits on the car: 'bag' (default) takes the bag's "
                             "static transform base_frame_id -> camera (or the topic map's "
                             "T_base_cam) where it has one, else the params; 'params' always takes "
                             "camera_to_base_xyz / _rpy of the params")
    parser.add_argument("--live", action="store_true",
                        help="play the bag through the real node (a subprocess) and record its outputs")
    parser.add_argument("--rate", type=float, default=1.0,
                        help="--live: play at this multiple of the recorded rate (default 1)")
    parser.add_argument("--domain-id", type=int, default=None,
                        help="--live: ROS_DOMAIN_ID of the node and the player (default derived "
                             "from the process id)")
    parser.add_argument("--report", type=Path, default=None,
                        help="evaluation report folder when the bag has ground truth "
                             "(default: <OUT>_report)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap",
                        help="storage of the prediction bag (default mcap)")
    parser.add_argument("--no-figures", action="store_true",
                        help="report without plots and montage: metrics.json and summary.md only")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no node log")


def main(args: argparse.Namespace) -> int:
    try:
        report = _check_options(args)
        settings = load_settings(args.params)
        with InputBag(args.bag, args.topics) as source:
            if args.camera_mount == "bag":
                settings = mount_as_recorded(settings, source)
            counts = _replay(args, source, settings)
            has_ground_truth = source.has_ground_truth
    except ReplayError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    print(f"replay ({'live' if args.live else 'offline'}): {counts.describe()} -> {args.out}")
    if has_ground_truth:
        return _evaluate(args.out, args.bag, report, args.topics, args.quiet, not args.no_figures)
    return 0


def _check_options(args: argparse.Namespace) -> Path:
    """Reject bad options before anything is written; returns the report folder."""
    try:
        check_output(args.out, args.storage)
    except BagOutputError as err:
        raise ReplayError(str(err)) from None
    if not args.rate > 0.0 or args.rate == float("inf"):
        raise ReplayError(f"--rate must be a positive multiple of the recorded rate, got {args.rate}")
    if args.domain_id is not None and not 0 <= args.domain_id <= 232:
        raise ReplayError(f"--domain-id must be within 0..232, got {args.domain_id}")
    report = args.report if args.report is not None else Path(f"{args.out}_report")
    if report.exists():
        raise ReplayError(f"report folder '{report}' already exists: choose another --report or "
                          f"delete it")
    return report


def _replay(args: argparse.Namespace, source: InputBag, settings: ReplaySettings) -> ReplayCounts:
    if args.live:
        from unified_perception.eval.replay_live import LiveOptions, replay_live

        _check_model(args.model)
        domain = args.domain_id if args.domain_id is not None else 10 + os.getpid() % 90
        return replay_live(source, args.model, settings, args.out, LiveOptions(
            rate=args.rate, domain_id=domain, quiet=args.quiet, storage=args.storage))
    try:
        replay = OfflineReplay(args.model, settings, source.camera)
    except (ModelLoadError, ContractError) as err:
        raise ReplayError(f"model {args.model}: {err}") from None
    try:
        with open_prediction_bag(args.out, source.camera, "offline", args.storage) as bag:
            counts, last_ns = replay_offline(source, replay, bag, progress=not args.quiet)
            bag.write_summary(last_ns, counts, str(args.model), "n/a")
    finally:
        replay.close()
    return counts


def _check_model(model: Path) -> None:
    """Load the model on the CPU and check it against the contract, as the node will."""
    try:
        InferenceEngine(EngineConfig(str(model), providers=("cpu",), warmup_runs=0),
                        log=lambda _: None).close()
    except (ModelLoadError, ContractError) as err:
        raise ReplayError(f"model {model}: {err}") from None


def _evaluate(pred: Path, gt: Path, report: Path, topic_map: Path | None, quiet: bool,
              figures: bool = True) -> int:
    """Score the predictions against the input bag's ground truth, if evaluation is installed."""
    try:
        from unified_perception.eval.evaluate import evaluate_bags
    except ImportError as err:
        if err.name != "unified_perception.eval.evaluate":
            raise
        print(f"{PROG}: the input bag has ground truth, but evaluation "
              f"(unified_perception.eval.evaluate) is not available; no report written. Score the "
              f"bag later with `unified-perception evaluate {pred} --gt {gt}`", file=sys.stderr)
        return 0
    from unified_perception.eval.report_errors import EvaluationError

    try:
        written = evaluate_bags(pred, gt, report, topics=topic_map, quiet=quiet, figures=figures)
    except EvaluationError as err:
        print(f"{PROG}: the prediction bag {pred} is complete, but evaluating it failed: {err}",
              file=sys.stderr)
        return 2
    print(f"report: {written}")
    return 0
