"""`unified-perception demo`: the whole product on a drive the model never saw.

1. the model (default: the shipped one) is loaded under the contract and its per-frame latency on
   this machine is measured with the runtime engine;
2. a synthetic drive with ground truth for every task is rendered at the model's input size from a
   seed no training recipe uses (the synthetic recipes train on seeds 1-72 and validate on 100; a
   seed the model's recipe names is refused);
3. the drive is played LIVE through the real node (its own process and ROS domain) at a rate
   this CPU sustains: by default the frame period is :data:`RATE_MARGIN` x the measured latency,
   so the node keeps up; every output is recorded;
4. the predictions are scored against the ground truth (metrics.json, summary.md, plots, montage).

It ends by printing where the report is and its headline (one main metric per task, model beside
baseline). ``OUT/demo.json`` records the settings, the counts and the timings (the model card
reads it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, TypeVar

from unified_perception.contract import ContractError, ModelMetadata
from unified_perception.eval.headline import frames_line, headline_table
from unified_perception.runtime.engine import EngineConfig, InferenceEngine, ModelLoadError
from unified_perception.runtime.latency import EngineLatency, time_frames
from unified_perception.runtime.model_files import SHIPPED_MODEL, models_folders, shipped_model_path

PROG = "unified-perception demo"
DEFAULT_OUT = Path("out/demo")
DEFAULT_FRAMES = 100
DEFAULT_SEED = 2028
"""The held-out drive. Chosen from the ground truth alone, before any model was scored on it:
of the seeds 2026-2029 at 100 frames, 2028 steers the most (std 1.1 deg; 2026 is nearly straight
at 0.3 deg, which would make steering a test of noise)."""
DRIVE_FPS = 10.0
"""Hz of the rendered drive (the rate the synthetic training sequences are rendered at)."""
RATE_MARGIN = 2.0
"""Default play rate: one frame every RATE_MARGIN x the engine's median latency (room for the
node's message handling, the player and the recorder on the same CPU)."""
RATE_STEP = 0.05
DRIVE, PREDICTIONS, REPORT, DEMO_FILE = "drive", "predictions", "report", "demo.json"

T = TypeVar("T")


class DemoError(RuntimeError):
    """A problem a user can fix; the message says what to do."""


@dataclass(frozen=True)
class DemoRecord:
    """What ``OUT/demo.json`` holds. Times in seconds, latencies in milliseconds."""

    model: str
    seed: int
    frames: int
    size_hw: tuple[int, int]
    drive_fps: float
    rate: float
    rate_chosen: str                 # "measured" or "given"
    engine_latency: dict[str, Any]
    frames_in: int
    frames_out: int
    report: str
    stage_seconds: dict[str, float]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None,
                        help=f"exported ONNX model (default: the shipped {SHIPPED_MODEL} from the "
                             "checkout's models/ or the installed share/unified_perception/models)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"demo folder: drive/, predictions/, report/, demo.json (default "
                             f"{DEFAULT_OUT}; a previous demo there is replaced)")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help=f"frames of the drive, at {DRIVE_FPS:g} Hz (default {DEFAULT_FRAMES})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"world seed of the drive (default {DEFAULT_SEED}; the synthetic "
                             "recipes train on 1-72 and validate on 100)")
    parser.add_argument("--rate", type=float, default=None,
                        help="play at this multiple of the drive's 10 Hz (default: from the "
                             f"latency measured here, one frame per {RATE_MARGIN:g} x latency)")


def main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        _check_options(args)
        model = _model_path(args.model)
        out = _prepare_out(args.out)
        record = _run(args, model, out)
    except DemoError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    metrics = json.loads((Path(record.report) / "metrics.json").read_text())
    print(f"\ndemo finished in {time.monotonic() - started:.0f} s. Report: {record.report}/ "
          f"(summary.md, metrics.json, montage.png, montage.gif, plots)")
    print(f"model {record.model}, held-out drive seed {record.seed}, {record.frames} frames at "
          f"{record.size_hw[0]}x{record.size_hw[1]}, played at {record.rate:g} x {DRIVE_FPS:g} Hz")
    print(frames_line(metrics))
    _explain_drops(record)
    print("\n".join(headline_table(metrics)))
    return 0


def _check_options(args: argparse.Namespace) -> None:
    if args.frames < 2:
        raise DemoError(f"--frames must be at least 2 (two-frame tasks need a pair), got {args.frames}")
    if args.rate is not None and not (0.0 < args.rate < math.inf):
        raise DemoError(f"--rate must be a positive multiple of the drive's {DRIVE_FPS:g} Hz, "
                        f"got {args.rate}")


def _model_path(given: Path | None) -> Path:
    """``--model``, else the shipped model; one clear message when there is none."""
    if given is not None:
        if not given.is_file():
            raise DemoError(f"model '{given}' is not a file; give an exported .onnx model")
        return given
    shipped = shipped_model_path()
    if shipped is None:
        raise DemoError(
            f"the shipped model {SHIPPED_MODEL} is in none of the package's models folders ("
            + ", ".join(str(f) for f in models_folders()) + "); give --model MODEL.onnx, or export "
            "the trained one with `bash scripts/ship_model.sh`")
    return shipped


def _prepare_out(out: Path) -> Path:
    """An empty ``out``, or one holding a previous demo (its parts are removed)."""
    if out.exists() and not out.is_dir():
        raise DemoError(f"--out '{out}' is a file; give a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / DEMO_FILE).is_file() and not (out / DRIVE).is_dir():
            raise DemoError(f"--out '{out}' holds files that are not a previous demo; choose "
                            "another --out or empty it")
        print(f"replacing the previous demo in {out}/")
        for name in (DRIVE, PREDICTIONS, REPORT):
            shutil.rmtree(out / name, ignore_errors=True)
        (out / DEMO_FILE).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _stage(number: int, title: str, seconds: dict[str, float], key: str,
           work: Callable[[], T]) -> T:
    print(f"\n[{number}/4] {title}", flush=True)
    start = time.monotonic()
    result = work()
    seconds[key] = round(time.monotonic() - start, 1)
    print(f"[{number}/4] done in {seconds[key]:.0f} s", flush=True)
    return result


def _run(args: argparse.Namespace, model: Path, out: Path) -> DemoRecord:
    seconds: dict[str, float] = {}
    meta, latency = _stage(1, f"model {model}: contract check and latency on this CPU", seconds,
                           "model", lambda: _load_and_time(model))
    check_held_out(meta, args.seed)
    size = (meta.input_height, meta.input_width)
    rate = args.rate if args.rate is not None else _sustainable_rate(latency)
    print(f"    {meta.backbone or 'model'} {size[0]}x{size[1]}, tasks "
          f"{', '.join(t.value for t in meta.tasks)}; trained: {_recipe_name(meta)}")
    print(f"    latency {latency.describe()} -> playing at {rate:g} x {DRIVE_FPS:g} Hz = "
          f"{rate * DRIVE_FPS:.2f} frames/s" + ("" if args.rate is None else " (--rate)"))
    drive = out / DRIVE
    _stage(2, f"rendering a held-out drive: seed {args.seed}, {args.frames} frames at "
              f"{size[0]}x{size[1]} -> {drive}", seconds, "render",
           lambda: _render(drive, args.seed, args.frames, size))
    predictions = out / PREDICTIONS
    counts = _stage(3, f"live replay through the node at {rate * DRIVE_FPS:.2f} frames/s "
                       f"(~{args.frames / (rate * DRIVE_FPS):.0f} s) -> {predictions}", seconds,
                    "replay", lambda: _replay(drive, model, predictions, rate))
    print(f"    {counts.describe()}")
    report = out / REPORT
    _stage(4, f"scoring against the ground truth -> {report}", seconds, "evaluate",
           lambda: _evaluate(predictions, drive, report))
    record = DemoRecord(str(model), args.seed, args.frames, size, DRIVE_FPS, rate,
                        "given" if args.rate is not None else "measured", asdict(latency),
                        counts.frames_in, counts.frames_out, str(report), seconds)
    (out / DEMO_FILE).write_text(json.dumps(asdict(record), indent=2) + "\n")
    return record


def _load_and_time(model: Path) -> tuple[ModelMetadata, EngineLatency]:
    try:
        engine = InferenceEngine(EngineConfig(str(model), providers=("cpu",), warmup_runs=2),
                                 log=lambda _: None)
    except (ModelLoadError, ContractError) as err:
        raise DemoError(f"model {model}: {err}") from None
    try:
        return engine.metadata, time_frames(engine, calls=8)
    finally:
        engine.close()


def _recipe_name(meta: ModelMetadata) -> str:
    recipe = meta.training_recipe
    return str(recipe.get("name") or recipe.get("status") or "no recipe in the metadata")


def training_seeds(meta: ModelMetadata) -> set[int]:
    """Synthetic seeds the model's recipe trained or validated on (empty when it names none)."""
    synthetic = (meta.training_recipe.get("data") or {}).get("synthetic") or {}
    return {int(s) for key in ("train_seeds", "val_seeds") for s in synthetic.get(key) or ()}


def check_held_out(meta: ModelMetadata, seed: int) -> None:
    """Raise :class:`DemoError` when ``seed`` is one of the model's training sequences."""
    seen = training_seeds(meta)
    if seed in seen:
        raise DemoError(f"seed {seed} is one of the model's training or validation sequences "
                        f"({sorted(seen)}); the demo shows a drive the model never saw: pick "
                        "another --seed")


def _sustainable_rate(latency: EngineLatency) -> float:
    """The largest multiple of :data:`RATE_STEP` (at most 1) whose frame period is at least
    :data:`RATE_MARGIN` x the median latency."""
    rate = (1.0 / DRIVE_FPS) / (RATE_MARGIN * latency.p50_ms / 1e3)
    return max(RATE_STEP, min(1.0, math.floor(rate / RATE_STEP) * RATE_STEP))


def _render(path: Path, seed: int, frames: int, size: tuple[int, int]) -> None:
    from unified_perception.sim.bag_writer import BagWriteError, write_bag
    from unified_perception.sim.config import CameraConfig, SimConfig
    from unified_perception.sim.synth_command import DEFAULT_START_TIME_S
    from unified_perception.sim.world import SyntheticWorld

    config = replace(SimConfig(), seed=seed, frames=frames, fps=DRIVE_FPS,
                     time_offset_s=DEFAULT_START_TIME_S,
                     camera=replace(CameraConfig(), height=size[0], width=size[1])).validate()
    world = SyntheticWorld(config)
    try:
        write_bag(path, (world.render(i) for i in range(frames)), config_json=config.to_json_dict(),
                  total=frames, progress=True)
    except BagWriteError as err:
        raise DemoError(str(err)) from None


def _replay(drive: Path, model: Path, predictions: Path, rate: float):
    from unified_perception.eval.replay_input import InputBag, mount_as_recorded
    from unified_perception.eval.replay_live import LiveOptions, replay_live
    from unified_perception.eval.replay_settings import ReplayError, load_settings

    try:
        settings = load_settings(None)
        with InputBag(drive, None) as source:
            settings = mount_as_recorded(settings, source)
            return replay_live(source, model, settings, predictions,
                               LiveOptions(rate=rate, domain_id=10 + os.getpid() % 90))
    except ReplayError as err:
        raise DemoError(f"live replay failed: {err}") from None


def _evaluate(predictions: Path, drive: Path, report: Path) -> None:
    from unified_perception.eval.evaluate import EvalOptions, run_evaluation
    from unified_perception.eval.report_errors import EvaluationError

    try:
        run_evaluation(predictions, drive, report, EvalOptions())
    except EvaluationError as err:
        raise DemoError(f"scoring failed: {err}") from None


def _explain_drops(record: DemoRecord) -> None:
    dropped = record.frames_in - record.frames_out
    if dropped:
        print(f"note: the node dropped {dropped} of {record.frames_in} frames (it was still busy "
              "when the next one came: the newest frame wins). The frame after a drop pairs with "
              "the last frame the node ran, so its ego-motion, scene flow and motion mask span "
              "two frame intervals while their ground truth spans one; those frames score worse. "
              "Play slower with --rate to avoid it.")
