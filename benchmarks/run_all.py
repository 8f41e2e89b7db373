"""Every efficiency claim of the unified encoder, measured side by side in one run on this machine.

    .venv/bin/python benchmarks/run_all.py [--quick] [--sizes 96x320 192x640] [--threads 0]
                                           [--preset car_lean|car|light|paper]

Random resnet18 models with the shipped model's ``car_lean`` heads (or ``--preset``; speed does not
depend on the weights), exported here, run through the runtime engine (:class:`InferenceEngine`,
ONNX Runtime CPU provider, its default settings). Candidates that are compared are timed in
interleaved rounds so that the machine's load hits them alike; where a ratio of two candidates is
the result (sections 1, 2, 5, 6) each round makes one call of each and the ratio is the median of
the per-round ratios (:func:`paired_ratio`: a slow spell of a shared machine cancels), the ratio of
the two p50s beside it in the note. Sections (sizes ``H x W``; the first size is the demo's and
the must-show checks use it):

1. unified pass vs the seven dedicated single-task models (depth, semantic, instance, panoptic,
   motion, scene flow, pose; each the same head on its own encoder: ``build_single_task_model``);
2. the encoder once per frame with the temporal state vs re-encoding the previous frame (one more
   encoder pass per frame) vs the official release's three backbone passes per pair (two more);
   an encoder pass is the steering-only model (encoder + latent + attention pool);
3. the node end to end vs the bare engine call on the same 720x1280 frame, interleaved: the
   node's own latency (camera message received -> last output published, its clock, as it reports
   it on /diagnostics to the other process) and the whole loopback trip (camera message published
   by another process -> the last of its per-frame outputs received there: the transport of the
   2.7 MB frame in and of the outputs back included); and where the node's own time goes (decode,
   resize, message building, point cloud, publishing);
4. batched multi-camera throughput for 1, 2 and 6 cameras per call;
5. float32 vs INT8 (``unified-perception quantize``, calibrated on a synthetic bag) vs float16-stored
   weights, with the INT8 outputs' agreement with float32 on a held-out synthetic bag;
6. the compute floor: total GFLOPs / the GFLOP/s the bare encoder reaches, and the model's ratio;
   the floor, the temporal state's ratio (cached / three passes) and INT8 / float32 again for
   cores that run nothing else (``intra_op_spinning``: threads spin-wait between the operators of
   a call);
7. GPU rows when onnxruntime's CUDA provider is available (``--gpu-only``: these alone): unified
   vs seven dedicated and the temporal state vs re-encoding on CUDA at batch 1; CUDA fp32 and
   TensorRT fp16 / INT8 at 192x640 and 384x1024, batch 1 and 6, the TensorRT engine cache on the
   second start, the temporal state on the device vs host copies; a provider that cannot start
   gets a row saying why; without a GPU provider one row says so;
8. the trained model (``models/unified_synthetic_resnet18.onnx`` or ``--trained``) and its INT8
   version replayed and scored on 36 held-out drives (``--held-out-drives N`` for more; rendered
   once into ``--drive-cache``; ``--trained-only``: this section alone), and
   how far the INT8 odometry moves from the float32 odometry (the float32 trajectory as reference).

Writes ``--out``/run_all.json and RESULTS.md (default: benchmarks/results/ and benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnxruntime as ort
from tqdm import tqdm

import bench_models
from bench_models import (REPO, cpu_engine, engine_step, export_bench_model, interleaved_ms,
                          machine, machine_line, model_gflops,
                          parse_size)
from unified_perception.runtime.engine import EngineConfig, InferenceEngine
from unified_perception.train.model import PRESETS

DEDICATED_TASKS = ("depth", "semantic", "instance", "panoptic", "motion", "scene_flow", "pose")
CAMERA_COUNTS = (1, 2, 6)
GPU_SIZES = ("192x640", "384x1024")


@dataclass
class Row:
    """One measured (or not run) item. ``value`` in ``unit``; ``ratio`` to the section's reference."""

    section: str
    item: str
    value: float | None
    unit: str
    ratio: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Effort:
    rounds: int
    per_round: int
    node_frames: int
    calibration_frames: int
    held_out_frames: int

    @property
    def paired_rounds(self) -> int:
        """Rounds of one call per candidate for the ratio sections (as many calls in all)."""
        return self.rounds * self.per_round


FULL = Effort(rounds=10, per_round=5, node_frames=60, calibration_frames=64, held_out_frames=40)
QUICK = Effort(rounds=2, per_round=2, node_frames=5, calibration_frames=8, held_out_frames=8)


def p50(values: np.ndarray) -> float:
    return round(float(np.median(values)), 2)


def ratio(a: float, b: float) -> float:
    return round(a / b, 3)


def paired_ratio(numerator: np.ndarray, denominator: np.ndarray) -> float:
    """Median over the rounds of ``numerator / denominator`` (ms of one call each, per round, from
    :func:`interleaved_ms` with one call per round): calls a few hundred ms apart share the
    machine's load, so a slow spell of the (shared) machine cancels in each round's ratio, where
    the ratio of two p50s moves with whichever candidate a spell happened to hit."""
    return round(float(np.median(np.asarray(numerator) / np.asarray(denominator))), 3)


PAIRED_NOTE = "median of the per-round ratios"
"""How the ratio sections' ratios are taken (:func:`paired_ratio`)."""


def dedicated_section(size: str, work: Path, effort: Effort, threads: int,
                      open_engine: Callable[[Path], InferenceEngine] | None = None,
                      prefix: str = "") -> list[Row]:
    """Unified pass vs each dedicated model and their sum (engines from ``open_engine``, default
    the CPU provider; ``prefix`` starts the section's name)."""
    h, w = parse_size(size)
    open_engine = open_engine or (lambda path: cpu_engine(path, threads))
    paths = {"unified": export_bench_model(h, w, work),
             **{t: export_bench_model(h, w, work, task=t) for t in DEDICATED_TASKS}}
    engines = {name: open_engine(path) for name, path in paths.items()}
    ms = interleaved_ms({n: engine_step(e) for n, e in engines.items()}, effort.paired_rounds, 1)
    for engine in engines.values():
        engine.close()
    total = sum(p50(ms[t]) for t in DEDICATED_TASKS)
    per_round_total = np.sum([ms[t] for t in DEDICATED_TASKS], axis=0)
    section = f"{prefix}unified vs seven dedicated models, {size}"
    rows = [Row(section, f"dedicated {t}", p50(ms[t]), "ms") for t in DEDICATED_TASKS]
    rows.append(Row(section, "seven dedicated models, sum", round(total, 2), "ms"))
    rows.append(Row(section, "unified pass (all tasks + steering)", p50(ms["unified"]), "ms",
                    paired_ratio(ms["unified"], per_round_total),
                    f"ratio = unified / seven dedicated, {PAIRED_NOTE} (of the p50s: "
                    f"{ratio(p50(ms['unified']), total)})"))
    return rows


def three_backbone_passes(run_encoder: Callable[[], Any], run_unified: Callable[[], Any]
                          ) -> Callable[[], None]:
    """The official release's work per frame pair: two more encoder passes (``run_encoder``, the
    steering-only model's call) before the unified pass (``run_unified``)."""
    def call() -> None:
        run_encoder()
        run_encoder()
        run_unified()
    return call


def encoder_section(size: str, work: Path, effort: Effort, threads: int,
                    open_engine: Callable[[Path], InferenceEngine] | None = None,
                    prefix: str = "") -> tuple[list[Row], dict[str, float]]:
    """State-cached unified pass vs the same plus one and two more encoder passes per frame
    (engines from ``open_engine``, default the CPU provider; ``prefix`` starts the section's name)."""
    h, w = parse_size(size)
    open_engine = open_engine or (lambda path: cpu_engine(path, threads))
    unified = open_engine(export_bench_model(h, w, work))
    encoder = open_engine(export_bench_model(h, w, work, task="steering"))
    run_unified, run_encoder = engine_step(unified), engine_step(encoder, seed=1)

    def re_encode() -> None:
        run_encoder()
        run_unified()

    ms = interleaved_ms({"cached": run_unified, "encoder": run_encoder, "re-encode": re_encode,
                         "three": three_backbone_passes(run_encoder, run_unified)},
                        effort.paired_rounds, 1)
    gflops = {"unified": float(unified.metadata.head_gflops.get("total", 0.0)),
              "encoder": float(encoder.metadata.head_gflops.get("total", 0.0)),
              "unified_encoder": float(unified.metadata.head_gflops.get("encoder", 0.0))}
    unified.close()
    encoder.close()
    section = f"{prefix}encoder once per frame vs re-encoding, {size}"
    cached = p50(ms["cached"])
    rows = [
        Row(section, "one encoder pass (steering-only model)", p50(ms["encoder"]), "ms", None,
            f"{gflops['encoder']:.2f} GFLOPs"),
        Row(section, "re-encode the previous frame (unified + 1 encoder pass)", p50(ms["re-encode"]), "ms"),
        Row(section, "official release: three backbone passes per pair (unified + 2 encoder passes)",
            p50(ms["three"]), "ms"),
        Row(section, "encoder once per frame, temporal state (unified)", cached, "ms",
            paired_ratio(ms["cached"], ms["three"]), f"ratio = cached / three passes, {PAIRED_NOTE} "
            f"(of the p50s: {ratio(cached, p50(ms['three']))}); / re-encode = "
            f"{paired_ratio(ms['cached'], ms['re-encode'])}; encoder work alone: 1 pass vs 3 = 0.333"),
    ]
    floor = {"encoder_ms": p50(ms["encoder"]), "unified_ms": cached, **gflops,
             "unified_per_encoder": paired_ratio(ms["cached"], ms["encoder"])}
    return rows, floor


def floor_section(size: str, floor: dict[str, float]) -> list[Row]:
    """Total GFLOPs / the encoder's GFLOP/s, and the unified pass's ratio to it."""
    rate = floor["encoder"] / floor["encoder_ms"] * 1e3            # GFLOP/s of the bare encoder
    floor_ms = floor["unified"] / rate * 1e3
    section = f"compute floor, {size}"
    return [Row(section, "bare encoder throughput", round(rate, 1), "GFLOP/s"),
            Row(section, "unified model work", round(floor["unified"], 2), "GFLOPs",
                None, f"encoder {floor['unified_encoder']:.2f}, heads {floor['unified'] - floor['unified_encoder']:.2f}"),
            Row(section, "compute floor (GFLOPs / encoder GFLOP/s)", round(floor_ms, 2), "ms"),
            Row(section, "unified pass", floor["unified_ms"], "ms",
                round(floor["unified_per_encoder"] * floor["encoder"] / floor["unified"], 3),
                f"ratio = unified / floor = (unified / encoder pass, {PAIRED_NOTE}) x encoder GFLOPs / "
                f"unified GFLOPs (of the p50s: {ratio(floor['unified_ms'], floor_ms)})")]


def dedicated_cores_section(size: str, work: Path, effort: Effort, threads: int) -> list[Row]:
    """The compute floor, the temporal state's ratio (state-cached / three backbone passes per
    pair) and INT8 / float32 again with ``intra_op_spinning`` (threads spin-wait between the
    operators of a call: the setting for cores that run nothing else), interleaved like the other
    sections (the engine stops a session's spinning when its call returns, so the sessions waiting
    for their turn stay idle). Needs the INT8 model that :func:`precision_section` wrote."""
    h, w = parse_size(size)
    models = {"encoder": export_bench_model(h, w, work, task="steering"),
              "unified": export_bench_model(h, w, work), "INT8": work / f"unified_{size}_int8.onnx"}
    engines = {name: cpu_engine(path, threads, spinning=True) for name, path in models.items()}
    steps = {n: engine_step(e) for n, e in engines.items()}
    three = three_backbone_passes(steps["encoder"], steps["unified"])
    ms = interleaved_ms({**steps, "three": three}, effort.paired_rounds, 1)
    for engine in engines.values():
        engine.close()
    gflops = {name: model_gflops(models[name]) for name in ("encoder", "unified")}
    floor_ms = gflops["unified"] / (gflops["encoder"] / p50(ms["encoder"]))
    section = f"dedicated cores (intra_op_spinning), {size}"
    return [Row(section, "one encoder pass (steering-only model)", p50(ms["encoder"]), "ms", None,
                f"{gflops['encoder'] / p50(ms['encoder']) * 1e3:.1f} GFLOP/s"),
            Row(section, "compute floor (GFLOPs / encoder GFLOP/s)", round(floor_ms, 2), "ms"),
            Row(section, "unified pass", p50(ms["unified"]), "ms",
                round(paired_ratio(ms["unified"], ms["encoder"]) * gflops["encoder"] / gflops["unified"], 3),
                f"ratio = unified / floor, {PAIRED_NOTE} (of the p50s: {ratio(p50(ms['unified']), floor_ms)})"),
            Row(section, "official release: three backbone passes per pair (unified + 2 encoder passes)",
                p50(ms["three"]), "ms"),
            Row(section, "encoder once per frame, temporal state (the unified pass above)", p50(ms["unified"]),
                "ms", paired_ratio(ms["unified"], ms["three"]), f"ratio = cached / three passes, "
                f"{PAIRED_NOTE} (of the p50s: {ratio(p50(ms['unified']), p50(ms['three']))})"),
            Row(section, "INT8 QDQ", p50(ms["INT8"]), "ms", paired_ratio(ms["INT8"], ms["unified"]),
                f"ratio = INT8 / float32 (the unified pass above), {PAIRED_NOTE} (of the p50s: "
                f"{ratio(p50(ms['INT8']), p50(ms['unified']))})")]


NODE_OWN_ROW = ("node end to end (camera message received by the node's middleware -> last output "
                "published; the node's p50 on /diagnostics, read by the other process)")
NODE_CALLBACK_ROW = ("node from the subscription callback (its latency p50 less the take p50: the "
                     "measure of runs before the take stage existed)")


def node_section(size: str, work: Path, effort: Effort) -> list[Row]:
    """The node end to end vs the bare engine call, and the node's own steps."""
    from bench_node_overhead import (node_breakdown_ms, node_vs_bare_ms, per_camera_outputs,
                                     vehicle_outputs)

    model = export_bench_model(*parse_size(size), work)
    node_ms, bare_ms, node_own = node_vs_bare_ms(model, effort.node_frames)
    node_own_ms = None if node_own is None else node_own.get("latency")
    steps = node_breakdown_ms(model, max(5, effort.node_frames))
    section = f"node end to end vs bare engine, {size} model, 720x1280 rgb8 frames"
    outputs = len(per_camera_outputs()) + len(vehicle_outputs())
    bare = p50(bare_ms)
    if node_own_ms is None:
        node_row = Row(section, NODE_OWN_ROW, None, "ms", None, "the node sent no diagnostics")
    else:
        node_row = Row(section, NODE_OWN_ROW, round(node_own_ms, 2), "ms", ratio(node_own_ms, bare),
                       "ratio = node / bare")
    loopback = p50(node_ms) if len(node_ms) else None
    rows = [Row(section, "bare engine call (resize + session + outputs)", bare, "ms"), node_row]
    if node_own_ms is not None and "take" in node_own:
        from_callback = round(node_own_ms - node_own["take"], 2)
        rows.append(Row(section, NODE_CALLBACK_ROW, from_callback, "ms", ratio(from_callback, bare),
                        "ratio = from the callback / bare"))
    rows.append(Row(section, f"loopback trip (frame published by another process -> last of its "
                             f"{outputs} per-frame outputs received by that process's middleware)",
                    loopback, "ms", None if loopback is None else ratio(loopback, bare),
                    f"ratio = loopback / bare (the frame's and the outputs' transport included); "
                    f"{len(node_ms)} of {effort.node_frames} frames complete"))
    rows += [Row(section, f"in the node: {stage}", round(value, 2), "ms", None,
                 "p50 on its /diagnostics" + (", resize + session + outputs" if stage == "inference" else ""))
             for stage, value in (node_own or {}).items() if stage != "latency"]
    rows += [Row(section, f"in-process, warm: {name}", value, "ms") for name, value in steps.items()]
    return rows


def batch_section(size: str, work: Path, effort: Effort, threads: int) -> list[Row]:
    """Frames per second with 1, 2 and 6 cameras in one call."""
    engine = cpu_engine(export_bench_model(*parse_size(size), work), threads)
    ms = interleaved_ms({str(n): engine_step(engine, n) for n in CAMERA_COUNTS},
                        effort.rounds, effort.per_round)
    engine.close()
    section = f"batched cameras, {size}"
    one = p50(ms["1"])
    return [Row(section, f"{n} camera{'s' if n > 1 else ''} per call", p50(ms[str(n)]), "ms per call",
                ratio(p50(ms[str(n)]) / n, one), f"{n / p50(ms[str(n)]) * 1e3:.1f} frames/s; ratio = "
                f"per-frame time / one camera's")
            for n in CAMERA_COUNTS]


def precision_section(size: str, work: Path, effort: Effort, threads: int) -> tuple[list[Row], dict[str, Any]]:
    """float32 vs INT8 vs float16-stored weights; INT8 agreement on a held-out synthetic bag."""
    from unified_perception.cli import main as cli_main
    from unified_perception.deploy.agreement import compare_models
    from unified_perception.deploy.quantize import model_frames
    from unified_perception.eval.replay_input import InputBag

    h, w = parse_size(size)
    fp32 = export_bench_model(h, w, work)
    fp16w = export_bench_model(h, w, work, weights_fp16=True)
    bags = {}
    for name, seed, frames in (("calibration", 7, effort.calibration_frames),
                               ("held_out", 2029, effort.held_out_frames)):
        bags[name] = work / f"{name}_{size}"
        if not bags[name].exists():
            assert cli_main(["synth", "--out", str(bags[name]), "--frames", str(frames), "--seed",
                             str(seed), "--size", size, "--quiet"]) == 0
    int8 = work / f"unified_{size}_int8.onnx"
    start = time.perf_counter()
    assert cli_main(["quantize", str(fp32), "--calibration", str(bags["calibration"]), "--out", str(int8),
                     "--frames", str(effort.calibration_frames)]) == 0
    quantize_s = time.perf_counter() - start
    engines = {"float32": cpu_engine(fp32, threads), "INT8 (QDQ)": cpu_engine(int8, threads),
               "float16-stored weights": cpu_engine(fp16w, threads)}
    ms = interleaved_ms({n: engine_step(e) for n, e in engines.items()}, effort.paired_rounds, 1)
    for engine in engines.values():
        engine.close()
    with InputBag(bags["held_out"]) as bag:
        images = [f[0] for f in model_frames(bag, (h, w)) if f is not None]
    agreement = compare_models(int8, fp32, images)
    section = f"precision, {size} (CPU provider)"
    ref = p50(ms["float32"])
    a = agreement
    rows = [Row(section, "float32", ref, "ms", 1.0),
            Row(section, "INT8 QDQ (convolutions int8 per channel)", p50(ms["INT8 (QDQ)"]), "ms",
                paired_ratio(ms["INT8 (QDQ)"], ms["float32"]),
                f"ratio {PAIRED_NOTE} (of the p50s: {ratio(p50(ms['INT8 (QDQ)']), ref)}); vs float32 on "
                f"{a.frames} held-out frames: depth rel. error {a.depth_rel_error:.4f}, "
                f"semantic agreement {a.semantic_agreement:.2%}, pose diff <= {a.pose_translation_m * 1e3:.2f} mm / "
                f"{a.pose_rotation_deg:.3f} deg, steering diff <= {a.steering_abs_rad:.4f} rad; "
                f"quantize took {quantize_s:.0f} s"),
            Row(section, "float16-stored weights (float32 compute on CPU)", p50(ms["float16-stored weights"]),
                "ms", paired_ratio(ms["float16-stored weights"], ms["float32"]),
                f"file {fp16w.stat().st_size / 1e6:.0f} MB vs {fp32.stat().st_size / 1e6:.0f} MB; fp16 compute "
                f"needs a GPU provider (TensorRT fp16)")]
    return rows, asdict(agreement)


HELD_OUT_DRIVE_FRAMES = 100
"""Frames of each held-out drive the trained model is scored on in float32 and INT8."""
HELD_OUT_DRIVE_SEEDS = tuple(range(2028, 2064))
"""The held-out drives (never trained on; 2028 is the demo's): a metric's change is that of its mean
over the 36. Odometry integrates every frame's error: INT8 moves one drive's ATE by -16 to +10 %,
so over twelve drives the per-drive mean of its change still had a standard error of 1.3 %;
over 36 it was 1.0 % (wider swings turned up), which is why each row also gives the 95 % interval
of the change (the per-drive spread and the standard error are in each row's note too)."""

DRIVE_CACHE = REPO / "data" / "synthetic" / "benchmark_drives"
"""Where the held-out drives are rendered once and found again (named by seed, frames and size)."""


TRAINED_METRICS = (("depth", "abs_rel"), ("depth", "a1"), ("semantic", "miou"), ("panoptic", "pq"),
                   ("motion", "iou"), ("scene_flow", "epe3d"), ("odometry", "ate_m"),
                   ("odometry", "rpe_trans_m"), ("odometry", "rpe_rot_deg"), ("steering", "rmse_deg"))
"""Metrics of the evaluation report compared between the float32 and the INT8 trained model."""


def trained_section(model: Path, work: Path, effort: Effort, drive_cache: Path = DRIVE_CACHE,
                    seeds: tuple[int, ...] = HELD_OUT_DRIVE_SEEDS) -> tuple[list[Row], dict[str, Any]]:
    """A trained model and its INT8 version (calibrated on a training bag) replayed through the
    runtime on the held-out drives ``seeds`` and scored: each metric's mean over the drives and its
    relative change (per-drive changes in the note). Drives rendered before into ``drive_cache`` are
    reused; the prediction bags are deleted once scored (80 MB each)."""
    from unified_perception.cli import main as cli_main
    from unified_perception.runtime.engine import InferenceEngine as Engine

    engine = Engine(EngineConfig(str(model), providers=("cpu",), warmup_runs=0), log=lambda _: None)
    h, w = engine.input_size
    engine.close()
    size = f"{h}x{w}"
    calibration = work / f"trained_calibration_{size}"
    assert cli_main(["synth", "--out", str(calibration), "--frames", str(effort.calibration_frames),
                     "--seed", "7", "--size", size, "--quiet"]) == 0
    int8 = work / "trained_int8.onnx"
    assert cli_main(["quantize", str(model), "--calibration", str(calibration), "--out", str(int8),
                     "--frames", str(effort.calibration_frames)]) == 0
    metrics: dict[str, dict[int, dict[str, Any]]] = {"float32": {}, "INT8": {}}
    trajectories: dict[int, dict[str, np.ndarray]] = {}
    for seed in tqdm(seeds, desc="held-out drives", unit="drive"):
        drive = held_out_drive(drive_cache, seed, size)
        preds = {name: work / f"trained_pred_{name}_{seed}" for name in metrics}
        for name, path in (("float32", model), ("INT8", int8)):
            assert cli_main(["replay", str(drive), "--model", str(path), "--out", str(preds[name]),
                             "--quiet", "--no-figures"]) == 0
            metrics[name][seed] = json.loads((Path(f"{preds[name]}_report") / "metrics.json").read_text())
        trajectories[seed] = predicted_trajectories(preds, drive)
        for pred in preds.values():
            shutil.rmtree(pred)
    rows = trained_rows(model.name, metrics)
    if all(len(t) == 3 for t in trajectories.values()):
        rows.append(odometry_agreement(rows[0].section, list(trajectories.values())))
    return rows, metrics


def predicted_trajectories(pred_bags: dict[str, Path], drive: Path) -> dict[str, np.ndarray]:
    """``{precision: [N, 4, 4] T_odom_base, "truth": [N, 4, 4]}`` of one drive at the stamps every
    prediction bag has odometry for (the first predicted pose moved onto the true one, as the
    evaluation scores it); empty when a bag has no odometry."""
    from unified_perception.data.rosbag_topics import load_rosbag_topics
    from unified_perception.eval.bag_frames import FramePairs
    from unified_perception.eval.scoring import start_aligned

    series = {}
    for name, bag in pred_bags.items():
        with FramePairs(bag, drive, load_rosbag_topics(None)) as pairs:
            poses = pairs.poses()
        if poses is None:
            return {}
        series[name] = poses
    common = series[next(iter(series))][1].stamp_ns
    for pred, _ in series.values():
        common = np.intersect1d(common, pred.stamp_ns)
    truth = next(iter(series.values()))[1]      # the drive's poses: the same for every bag
    T_true = truth.T[np.isin(truth.stamp_ns, common)]
    out = {name: start_aligned(pred.T[np.isin(pred.stamp_ns, common)], T_true)
           for name, (pred, _) in series.items()}
    return {**out, "truth": T_true}


def path_length_m(poses: np.ndarray) -> float:
    """Summed frame-to-frame translation (m) of ``[N, 4, 4]`` poses."""
    steps = np.linalg.inv(poses[:-1]) @ poses[1:]
    return float(np.linalg.norm(steps[:, :3, 3], axis=1).sum())


def odometry_agreement(section: str, drives: list[dict[str, np.ndarray]]) -> Row:
    """How far the INT8 model's odometry moves from the float32 model's on the same drives (the
    float32 trajectory as the reference), against float32's own error: ATE (SE(3)-aligned) and
    RPE translation of INT8 against float32, the path length ratio, and what that implies for
    scoring ATE: the spread of the per-drive relative ATE change and the drives that would put two
    standard errors of its mean under 1 %."""
    from unified_perception.eval.metrics.odometry import absolute_trajectory_error, relative_pose_error

    ate_pair = [absolute_trajectory_error(d["INT8"], d["float32"]) for d in drives]
    rpe_pair = [relative_pose_error(d["INT8"], d["float32"]).trans_rmse_m for d in drives]
    ate_float = np.array([absolute_trajectory_error(d["float32"], d["truth"]) for d in drives])
    ate_int8 = np.array([absolute_trajectory_error(d["INT8"], d["truth"]) for d in drives])
    length = sum(path_length_m(d["INT8"]) for d in drives) / sum(path_length_m(d["float32"]) for d in drives)
    change_sd = float(np.std(ate_int8 / ate_float - 1.0, ddof=1)) if len(drives) > 1 else float("nan")
    needed = int(np.ceil((2.0 * change_sd / 0.01) ** 2)) if np.isfinite(change_sd) else 0
    return Row(section, "odometry: INT8 trajectory against float32's", round(float(np.mean(ate_pair)), 4), "m",
               None, f"ATE with float32's trajectory as the reference, mean over the drives (max "
               f"{max(ate_pair):.3f} m; float32 against the truth {ate_float.mean():.3f} m); RPE "
               f"translation {np.mean(rpe_pair) * 1e3:.1f} mm per frame; path length INT8 / float32 "
               f"{length:.4f}; the per-drive ATE change has a standard deviation of {change_sd:.1%}, "
               f"so its mean needs about {needed} drives for two standard errors under 1 %")


BOOTSTRAP_RESAMPLES = 10_000
"""Resamples of the drives for the 95 % interval of a metric's change (paired bootstrap)."""


def change_interval(reference: np.ndarray, new: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95 % interval of the relative change of the mean, ``mean(new) / mean(reference) - 1``, by a
    paired bootstrap over the drives (each resample draws drives, both precisions of a drive together)."""
    draws = np.random.default_rng(seed).integers(0, len(reference), (BOOTSTRAP_RESAMPLES, len(reference)))
    changes = new[draws].mean(axis=1) / reference[draws].mean(axis=1) - 1.0
    low, high = np.percentile(changes, [2.5, 97.5])
    return float(low), float(high)


def trained_rows(model_name: str, metrics: dict[str, dict[Any, dict[str, Any]]]) -> list[Row]:
    """One row per metric of :data:`TRAINED_METRICS`: the INT8 mean over the drives and its relative
    change from float32, with the per-drive spread, the mean of the per-drive changes and the
    95 % interval of the change. ``metrics[precision][seed]`` is a drive's metrics.json."""
    seeds = sorted(metrics["float32"], key=int)
    section = (f"trained model {model_name}: float32 vs INT8 on {len(seeds)} held-out drives (seeds "
               f"{', '.join(str(s) for s in seeds)}, {HELD_OUT_DRIVE_FRAMES} frames each)")
    rows = []
    for task, key in TRAINED_METRICS:
        values = {name: [(by_seed[s].get(task) or {}).get(key) for s in seeds]
                  for name, by_seed in metrics.items()}
        if any(v is None for vs in values.values() for v in vs):
            continue
        ref, new = float(np.mean(values["float32"])), float(np.mean(values["INT8"]))
        changes = [(n - r) / abs(r) for r, n in zip(values["float32"], values["INT8"]) if r]
        spread = ""
        if len(changes) > 1:
            low, high = change_interval(np.asarray(values["float32"]), np.asarray(values["INT8"]))
            spread = (f"; 95 % interval of the change {low:+.4f} to {high:+.4f} (paired bootstrap over "
                      f"the drives); per drive {min(changes):+.3f} to {max(changes):+.3f}, mean "
                      f"{np.mean(changes):+.4f} +- {np.std(changes, ddof=1) / np.sqrt(len(changes)):.4f} "
                      f"(standard error)")
        rows.append(Row(section, f"{task} {key}", round(new, 4), "", round((new - ref) / abs(ref), 4)
                        if ref else None, f"float32 {ref:.4f}; ratio = relative change of the mean{spread}"))
    return rows


def held_out_drive(cache: Path, seed: int, size: str) -> Path:
    """The held-out drive of ``seed`` at ``size`` in ``cache``, rendered first if it is not there
    (a drive counts once its bag's metadata.yaml exists; a half-written one is rendered again)."""
    from unified_perception.cli import main as cli_main

    drive = cache / f"held_out_{seed}_{HELD_OUT_DRIVE_FRAMES}f_{size}"
    if not (drive / "metadata.yaml").is_file():
        shutil.rmtree(drive, ignore_errors=True)
        cache.mkdir(parents=True, exist_ok=True)
        assert cli_main(["synth", "--out", str(drive), "--frames", str(HELD_OUT_DRIVE_FRAMES), "--seed",
                         str(seed), "--size", size, "--quiet"]) == 0
    return drive


def gpu_section(work: Path, effort: Effort, sizes: tuple[str, ...] = GPU_SIZES) -> list[Row]:
    """GPU rows where onnxruntime offers the CUDA provider (TensorRT runs beside it); otherwise one
    row saying why not. At the first size also the unified pass vs the seven dedicated models and
    the encoder once per frame vs re-encoding, on CUDA at batch 1, as on the CPU."""
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        return [Row("GPU", "CUDA fp32, TensorRT fp16 and TensorRT INT8 (QDQ, --target tensorrt) at "
                    f"{' and '.join(sizes)}, batch 1 and 6; TensorRT engine cache on the second "
                    "start; temporal state on the device vs host copies", None, "ms", None,
                    f"not run: this onnxruntime build offers {', '.join(available)} (no CUDA "
                    f"provider; no GPU on this machine)")]

    def cuda(path: Path) -> InferenceEngine:
        return _gpu_engine(path, ("cuda",), work / "trt_cache", 1)

    rows = dedicated_section(sizes[0], work, effort, 0, cuda, prefix="GPU (CUDA fp32): ")
    print(f"{rows[-1].section}: done", flush=True)
    rows += encoder_section(sizes[0], work, effort, 0, cuda, prefix="GPU (CUDA fp32): ")[0]
    print(f"{rows[-1].section}: done", flush=True)
    for size in sizes:
        rows += _gpu_size_rows(size, work, effort)
        print(f"GPU, {size}: done", flush=True)
    return rows


def _gpu_engine(model: Path, providers: tuple[str, ...], cache: Path, batch: int,
                state_on_device: bool | None = None) -> InferenceEngine:
    """The runtime engine on ``providers[0]``; raises ``RuntimeError`` (with ONNX Runtime's reason)
    when the session fell back to another provider, so that no row is labelled with a provider it
    did not run on."""
    engine = InferenceEngine(EngineConfig(str(model), providers=providers, trt_cache_dir=str(cache),
                                          warmup_batch=batch, state_on_device=state_on_device),
                             log=lambda _: None)
    if engine.active_provider != providers[0]:
        reason = engine.provider_reason
        engine.close()
        raise RuntimeError(f"asked for {providers[0]}, runs on {engine.active_provider}: {reason}")
    return engine


def _gpu_latency_row(section: str, name: str, model: Path, provider: str, work: Path, batch: int,
                     effort: Effort) -> Row:
    """p50 ms of one engine call on ``batch`` frames, or a row saying why the provider did not run."""
    try:
        engine = _gpu_engine(model, (provider,), work / "trt_cache", batch)
    except Exception as err:  # a provider that fails to start: the row says why
        return Row(section, f"{name}, batch {batch}", None, "ms", None, f"failed: {err}"[:400])
    ms = interleaved_ms({"x": engine_step(engine, batch)}, effort.rounds, effort.per_round)["x"]
    engine.close()
    return Row(section, f"{name}, batch {batch}", p50(ms), "ms per call", None,
               f"{batch / p50(ms) * 1e3:.0f} frames/s; host pre-processing and output copies included")


def _tensorrt_problem(model: Path, work: Path) -> str | None:
    """Why TensorRT cannot run here (None when it can): not in this build, or its libraries fail
    to load (ONNX Runtime then falls back to CUDA)."""
    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        return "this onnxruntime build has no TensorRT provider"
    provider_library = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_tensorrt.so"
    try:  # the dynamic loader names the first TensorRT library it cannot find
        if provider_library.is_file():
            ctypes.CDLL(str(provider_library))
    except OSError as err:
        if "cannot open shared object file" in str(err):
            return f"the TensorRT provider's libraries do not load ({err}): TensorRT is not installed"
    try:
        _gpu_engine(model, ("tensorrt",), work / "trt_cache", 1).close()
    except Exception as err:
        return str(err)[:400]
    return None


def _gpu_size_rows(size: str, work: Path, effort: Effort) -> list[Row]:
    """Latency per provider and batch at ``size``, the engine cache and the device-side state."""
    from unified_perception.cli import main as cli_main

    h, w = parse_size(size)
    fp32 = export_bench_model(h, w, work)
    section = f"GPU, {size}"
    rows = [_gpu_latency_row(section, "CUDA fp32", fp32, "cuda", work, batch, effort) for batch in (1, 6)]
    if trt_problem := _tensorrt_problem(fp32, work):
        rows.append(Row(section, "TensorRT fp16 and INT8 (QDQ file), batch 1 and 6; engine cache on "
                        "the second start", None, "ms", None, f"not run: {trt_problem}"))
    else:
        bag, int8 = work / f"calibration_{size}", work / f"unified_{size}_int8_trt.onnx"
        if not bag.exists():
            assert cli_main(["synth", "--out", str(bag), "--frames", str(effort.calibration_frames),
                             "--seed", "7", "--size", size, "--quiet"]) == 0
        assert cli_main(["quantize", str(fp32), "--calibration", str(bag), "--out", str(int8),
                         "--frames", str(effort.calibration_frames), "--target", "tensorrt"]) == 0
        for name, model in {"TensorRT fp16": fp32, "TensorRT INT8 (QDQ file)": int8}.items():
            rows += [_gpu_latency_row(section, name, model, "tensorrt", work, batch, effort) for batch in (1, 6)]
        cache, starts = work / f"trt_cache_fresh_{size}", []
        for _ in range(2):
            begin = time.perf_counter()
            _gpu_engine(fp32, ("tensorrt",), cache, 1).close()
            starts.append(time.perf_counter() - begin)
        rows.append(Row(section, "TensorRT fp16 start: first (builds) vs second (cache)", round(starts[1], 2),
                        "s", ratio(starts[1], starts[0]), f"first start {starts[0]:.1f} s"))
    engines = {on: _gpu_engine(fp32, ("cuda",), work / "trt_cache", 1, on) for on in (True, False)}
    ms = interleaved_ms({str(on): engine_step(e) for on, e in engines.items()}, effort.paired_rounds, 1)
    rows.append(Row(section, "CUDA, temporal state on the device (I/O binding)", p50(ms["True"]), "ms",
                    paired_ratio(ms["True"], ms["False"]),
                    f"ratio = device state / host copies ({p50(ms['False'])} ms), {PAIRED_NOTE}"))
    for engine in engines.values():
        engine.close()
    return rows


MUST_SHOW = (
    ("unified / seven dedicated", "unified vs seven dedicated models", "unified pass", 0.30),
    ("unified / compute floor", "compute floor", "unified pass", 1.3),
    ("state-cached / three-pass re-encode", "encoder once per frame", "encoder once per frame", 0.60),
    ("node end to end / bare engine", "node end to end", "node end to end", 1.10),
    ("node loopback trip / bare engine", "node end to end", "loopback trip", 1.10),
    ("INT8 / float32", "precision", "INT8", 0.6),
    ("unified / compute floor, dedicated cores", "dedicated cores", "unified pass", 1.3),
    ("state-cached / three-pass re-encode, dedicated cores", "dedicated cores", "encoder once per frame", 0.60),
    ("INT8 / float32, dedicated cores", "dedicated cores", "INT8", 0.6),
)


def must_show(rows: list[Row], size: str, speed: bool = True) -> list[dict[str, Any]]:
    """The issue's must-show ratios at the demo size ``size``: value, threshold, met (the speed
    ratios only with ``speed``)."""
    checks = []
    for name, section, item, threshold in MUST_SHOW if speed else ():
        row = next((r for r in rows if r.section.startswith(section) and size in r.section
                    and r.item.startswith(item)), None)
        value = row.ratio if row else None
        checks.append({"check": name, "value": value, "threshold": threshold,
                       "met": value is not None and value <= threshold})
    trained = [r for r in rows if r.section.startswith("trained model") and r.ratio is not None]
    if trained:
        largest = max(abs(r.ratio) for r in trained)
        worst = max(worsening(r.item, r.ratio) for r in trained)
        checks += [{"check": "trained INT8 metrics, largest relative change", "value": round(largest, 4),
                    "threshold": 0.01, "met": largest <= 0.01},
                   {"check": "trained INT8 metrics, largest relative worsening", "value": round(worst, 4),
                    "threshold": 0.01, "met": worst <= 0.01}]
    return checks


HIGHER_IS_BETTER = {"depth a1", "semantic miou", "panoptic pq", "motion iou"}
"""Metrics of :data:`TRAINED_METRICS` where a larger value is better (the rest are errors)."""


def worsening(item: str, change: float) -> float:
    """A metric's relative change counted positive when INT8 is worse than float32."""
    return -change if item in HIGHER_IS_BETTER else change


def markdown(report: dict[str, Any]) -> str:
    what = ("the trained model and its INT8 file replayed through the runtime, ONNX Runtime CPU provider"
            if report.get("trained_only") else
            f"resnet18 models with the `{report['preset']}` heads and random weights, runtime engine on "
            f"ONNX Runtime's GPU providers; p50 of interleaved rounds, ratios of two candidates the median "
            f"of the per-round ratios" if report.get("gpu_only") else
            f"resnet18 models with the `{report['preset']}` heads and random weights, runtime engine on the "
            f"ONNX Runtime CPU provider, intra-op threads {report['threads'] or 'default'}; p50 of "
            f"interleaved rounds, ratios of two candidates the median of the per-round ratios")
    lines = ["# Benchmarks: the unified encoder, side by side", "",
             f"Machine: {machine_line(report['machine'])}.", "",
             f"Command: `{report['command']}` ({report['seconds']:.0f} s; {what})."]
    if report["must_show"]:
        lines += ["", "## Must show (demo size " + report["demo_size"] + ")", "",
                  "| ratio | measured | target | met |", "|---|---:|---:|---|"]
        lines += [f"| {c['check']} | {c['value'] if c['value'] is not None else '-'} | <= {c['threshold']} | "
                  f"{'yes' if c['met'] else 'no'} |" for c in report["must_show"]]
    section = None
    for row in report["rows"]:
        if row["section"] != section:
            section = row["section"]
            lines += ["", f"## {section}", "", "| item | value | ratio | note |", "|---|---:|---:|---|"]
        value = "not run" if row["value"] is None else f"{row['value']} {row['unit']}"
        rat = "" if row["ratio"] is None else f"{row['ratio']}"
        lines.append(f"| {row['item']} | {value} | {rat} | {row['note']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="demo size only, 2 rounds of 2 calls, 5 node frames, 8 calibration frames")
    parser.add_argument("--sizes", nargs="+", default=None,
                        help="model sizes HxW, the demo size first (default 96x320 192x640; --quick: 96x320)")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = ONNX Runtime default)")
    parser.add_argument("--preset", default=bench_models.PRESET, choices=sorted(PRESETS),
                        help="head preset of the random models (default: the shipped model's; 'light' "
                             "for the fast heads, e.g. with --out benchmarks/results_light "
                             "--markdown benchmarks/RESULTS_light.md)")
    parser.add_argument("--skip-node", action="store_true", help="leave out the ROS node section")
    parser.add_argument("--trained", type=Path, default=None,
                        help="also score this trained model and its INT8 version on the held-out "
                             "drives (default: models/unified_synthetic_resnet18.onnx when it exists)")
    parser.add_argument("--held-out-drives", type=int, default=len(HELD_OUT_DRIVE_SEEDS),
                        help=f"held-out drives the trained model is scored on (seeds from "
                             f"{HELD_OUT_DRIVE_SEEDS[0]}; default {len(HELD_OUT_DRIVE_SEEDS)}; about 25 s "
                             f"each on a 2-core CPU, plus 5 s to render one the first time)")
    parser.add_argument("--trained-only", action="store_true",
                        help="only the trained model's section (no speed sections, no GPU rows)")
    parser.add_argument("--gpu-only", action="store_true",
                        help="only the GPU rows (CUDA / TensorRT; sizes from --sizes, default "
                             f"{' '.join(GPU_SIZES)})")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the exported models, reused when they are there "
                             "(default: a temporary folder)")
    parser.add_argument("--drive-cache", type=Path, default=DRIVE_CACHE,
                        help="folder the held-out drives are rendered into once and reused from "
                             f"(default {DRIVE_CACHE.relative_to(REPO)})")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--markdown", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    if args.gpu_only and args.trained_only:
        parser.error("--gpu-only and --trained-only exclude each other")
    if args.held_out_drives < 2:
        parser.error(f"--held-out-drives must be at least 2, got {args.held_out_drives}")
    seeds = tuple(range(HELD_OUT_DRIVE_SEEDS[0], HELD_OUT_DRIVE_SEEDS[0] + args.held_out_drives))
    bench_models.use_preset(args.preset)
    effort = QUICK if args.quick else FULL
    sizes = args.sizes or (list(GPU_SIZES) if args.gpu_only else ["96x320"] if args.quick else ["96x320", "192x640"])
    start = time.perf_counter()
    report: dict[str, Any] = {"machine": machine(), "demo_size": sizes[0], "threads": args.threads,
                              "preset": args.preset, "trained_only": args.trained_only,
                              "gpu_only": args.gpu_only,
                              "command": "python benchmarks/run_all.py " + " ".join(sys.argv[1:])}
    rows: list[Row] = []
    agreement = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for size in [] if args.trained_only or args.gpu_only else sizes:
            steps = [lambda: dedicated_section(size, work, effort, args.threads),
                     lambda: batch_section(size, work, effort, args.threads)]
            for step in steps:
                rows += step()
                print(f"{rows[-1].section}: done ({time.perf_counter() - start:.0f} s)", flush=True)
            encoder_rows, floor = encoder_section(size, work, effort, args.threads)
            rows += encoder_rows + floor_section(size, floor)
            precision_rows, agreement[size] = precision_section(size, work, effort, args.threads)
            rows += precision_rows
            rows += dedicated_cores_section(size, work, effort, args.threads)
            print(f"{size}: encoder, floor, precision done ({time.perf_counter() - start:.0f} s)", flush=True)
            if size == sizes[0] and not args.skip_node:
                rows += node_section(size, work, effort)
                print(f"{size}: node done ({time.perf_counter() - start:.0f} s)", flush=True)
        trained = args.trained or REPO / "models" / "unified_synthetic_resnet18.onnx"
        if trained.is_file() and not args.gpu_only:
            trained_rows, report["trained_metrics"] = trained_section(trained, work, effort,
                                                                       args.drive_cache, seeds)
            rows += trained_rows
            print(f"trained model scored ({time.perf_counter() - start:.0f} s)", flush=True)
        if not args.trained_only:
            rows += gpu_section(work, effort, tuple(sizes) if args.gpu_only else GPU_SIZES)
    report["seconds"] = time.perf_counter() - start
    report["must_show"] = must_show(rows, sizes[0], speed=not (args.trained_only or args.gpu_only))
    report["int8_agreement"] = agreement
    report["rows"] = [asdict(r) for r in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "run_all.json").write_text(json.dumps(report, indent=2))
    args.markdown.write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
