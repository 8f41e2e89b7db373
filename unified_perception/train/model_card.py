"""`unified-perception model-card`: the Markdown card of an exported model (``models/<name>.md``).

Everything in the card is read or measured, nothing typed in: architecture, parameters and GFLOPs
from the ONNX metadata (measured at export), size and weight storage from the file, CPU latency
measured here with the runtime engine, the recipe from the chain file and its stage recipes plus
the checkpoint, the data from the checkpoint's ``data_summary``, and the held-out metrics with
their baselines from a demo folder (``unified-perception demo``: demo.json + report/metrics.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Mapping

import onnx

from unified_perception.contract import ModelMetadata
from unified_perception.eval.headline import frames_line, headline_table
from unified_perception.runtime.latency import EngineLatency, measure_latency
from unified_perception.train.export_fp16 import weights_stored_fp16

DEMO_FILE = "demo.json"
REPORT_METRICS, REPORT_SUMMARY = Path("report") / "metrics.json", Path("report") / "summary.md"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="the exported ONNX model")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="the checkpoint it was exported from (step, data summary, steering "
                             "stage); default: the ONNX metadata only")
    parser.add_argument("--chain", type=Path, default=None,
                        help="the chain recipe that trained it (e.g. config/train/synthetic_chain.yaml)")
    parser.add_argument("--demo", type=Path, default=None,
                        help="folder of `unified-perception demo` with this model (default out/demo "
                             "when it ran this model)")
    parser.add_argument("--latency-frames", type=int, default=20,
                        help="frames timed for the CPU latency (default 20)")
    parser.add_argument("--out", type=Path, default=None, help="card to write (default: MODEL.md)")


def main(args: argparse.Namespace) -> int:
    from unified_perception.runtime.engine import ModelLoadError
    from unified_perception.train.checkpoint import CheckpointError, load_checkpoint
    from unified_perception.train.recipe import RecipeError

    out = args.out or args.model.with_suffix(".md")
    try:
        payload = load_checkpoint(args.checkpoint) if args.checkpoint else {}
        demo = _demo_folder(args.demo, args.model)
        card = build_card(args.model, payload, args.chain, demo, args.latency_frames)
    except (CheckpointError, RecipeError, ModelLoadError, CardError) as err:
        print(f"unified-perception model-card: {err}", file=sys.stderr)
        return 2
    out.write_text(card)
    print(f"wrote {out}")
    return 0


class CardError(RuntimeError):
    """Inputs the card cannot be made from; the message says what to give instead."""


def _demo_folder(given: Path | None, model: Path) -> Path | None:
    """``--demo``, else out/demo when its demo.json names this model; None without a demo."""
    if given is not None:
        if not (given / DEMO_FILE).is_file() or not (given / REPORT_METRICS).is_file():
            raise CardError(f"--demo '{given}' holds no finished demo ({DEMO_FILE} and "
                            f"{REPORT_METRICS}); run `unified-perception demo --out {given}` first")
        return given
    default = Path("out/demo")
    if (default / DEMO_FILE).is_file() and (default / REPORT_METRICS).is_file():
        record = json.loads((default / DEMO_FILE).read_text())
        if Path(record.get("model", "")).resolve() == model.resolve():
            return default
    return None


def build_card(model: Path, payload: Mapping[str, Any], chain: Path | None, demo: Path | None,
               latency_frames: int = 20) -> str:
    """The card's Markdown text."""
    if not model.is_file():
        raise CardError(f"model '{model}' not found")
    proto = onnx.load(str(model), load_external_data=False)
    meta = ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props})
    latency = measure_latency(model, calls=latency_frames)
    lines = [f"# {model.stem}", ""]
    lines += _overview(model, meta, weights_stored_fp16(proto))
    lines += _costs(meta)
    lines += _latency(latency)
    lines += _recipe(chain, payload or {"recipe": meta.training_recipe})
    lines += _data(payload.get("data_summary") or meta.data_summary)
    lines += _demo(demo)
    return "\n".join(lines) + "\n"


def _overview(model: Path, meta: ModelMetadata, fp16: bool) -> list[str]:
    size_mb = model.stat().st_size / 1e6
    storage = ("float16 weights, float32 compute (ONNX Runtime folds the casts when it loads the "
               "model)" if fp16 else "float32 weights")
    return [
        f"One unified multi-task network per camera frame ({', '.join(t.value for t in meta.tasks)}), "
        f"`{meta.backbone}` encoder at {meta.input_height}x{meta.input_width} px (the node resizes "
        "camera images to it). Trained on the synthetic world only; see Recipe and Data.", "",
        f"- file: `{model.name}`, {size_mb:.1f} MB on disk, {storage}",
        f"- contract {meta.contract_version}, produced by {meta.producer or '-'}",
        f"- latent {meta.latent_dim}, steering window {meta.steering_window} frames, depth "
        f"[{meta.depth_min_m:g}, {meta.depth_max_m:g}] m, steering in {meta.steering_units}",
        "- run it: `ros2 launch unified_perception car.launch.py` (the default model) or "
        "`unified-perception demo`", ""]


def _costs(meta: ModelMetadata) -> list[str]:
    params, gflops = meta.head_parameters, meta.head_gflops
    lines = ["## Parameters and GFLOPs", "",
             f"{params.get('total', 0) / 1e6:.2f} M parameters, {gflops.get('total', 0.0):.2f} "
             f"GFLOPs per frame at {meta.input_height}x{meta.input_width} (measured at export, one "
             "frame with its previous frame in the state).", "",
             "| part | parameters | GFLOPs |", "|---|---|---|"]
    for part in [p for p in params if p != "total"]:
        lines.append(f"| {part} | {params[part]:,} | {gflops.get(part, 0.0):.3f} |")
    return lines + [""]


def _machine() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime
    return f"{name}, {os.cpu_count()} cores, ONNX Runtime {onnxruntime.__version__}"


def _latency(latency: EngineLatency) -> list[str]:
    return ["## CPU latency", "",
            f"{latency.describe()}, one camera, batch 1, with the runtime engine "
            f"(`unified_perception.runtime.latency`) on {_machine()}. The node adds its message "
            "handling on top (see the demo's live latency below).", ""]


def _stage_row(recipe: Any) -> str:
    if recipe.kind == "steering":
        s = recipe.steering
        what = (f"modes {', '.join(s.get('modes', []))}; {s.get('folds', '?')}-fold; "
                f"{s.get('steps', '?')} steps, batch {s.get('batch_size', '?')}, lr {s.get('lr', '?')}")
        what += "; kinematic prior" if s.get("kinematic") else ""
        return f"| {recipe.name} | steering | steering head on the encoder | {what} |"
    if recipe.kind == "pose":
        p = recipe.pose
        what = (f"{p.get('steps', '?')} steps, batch {p.get('batch_size', '?')} frame pairs, lr "
                f"{p.get('lr', '?')}, turn emphasis {p.get('turn_emphasis', '?')}")
        return f"| {recipe.name} | pose | pose decoder on the frozen encoder | {what} |"
    if recipe.kind == "depth":
        d = recipe.depth
        what = (f"to {d.get('activation', 'relu')}; {d.get('steps', '?')} steps, batch "
                f"{d.get('batch_size', '?')} frames, lr {d.get('lr', '?')}")
        return f"| {recipe.name} | depth | depth decoder on the frozen encoder | {what} |"
    teachers = ", ".join(recipe.teachers) or "–"
    optim = recipe.optim
    return (f"| {recipe.name} | {recipe.kind} | {', '.join(recipe.model.tasks)} | "
            f"{optim.steps} steps, batch {optim.batch_size}, lr {optim.lr:g}; teachers: {teachers} |")


def _recipe(chain: Path | None, payload: Mapping[str, Any]) -> list[str]:
    from unified_perception.train.recipe import load_recipe

    lines = ["## Recipe", ""]
    if chain is not None:
        recipe = load_recipe(chain)
        lines += [f"Chain `{chain}` (`unified-perception train --recipe {chain} --out runs/synthetic`), "
                  "stages in order:", "", "| stage | kind | trains | settings |", "|---|---|---|---|"]
        for stage in recipe.stages:
            path = stage if stage.is_absolute() or stage.exists() else chain.parent / stage
            lines.append(_stage_row(load_recipe(path)))
        lines.append("")
    trained = payload.get("recipe") or {}
    model = trained.get("model") or {}
    lines.append(f"Weights: recipe `{trained.get('name', trained.get('status', '?'))}`"
                 + (f", step {payload['step']}" if "step" in payload else "")
                 + (f", backbone init {payload['backbone_init']}" if payload.get("backbone_init") else "")
                 + (f", preset `{model.get('preset')}`" if model.get("preset") else "") + ".")
    pose = payload.get("pose_stage")
    if isinstance(pose, Mapping):
        before, after = pose.get("before") or {}, pose.get("after") or {}
        lines.append("Pose decoder: refit on the frozen encoder by the pose stage "
                     f"({pose.get('train_pairs', '?')} frame pairs); on the validation drives yaw "
                     f"RMSE {before.get('yaw_rmse_deg', float('nan')):.3f} -> "
                     f"{after.get('yaw_rmse_deg', float('nan')):.3f} deg, translation error "
                     f"{before.get('translation_error_m', float('nan')):.3f} -> "
                     f"{after.get('translation_error_m', float('nan')):.3f} m per frame pair.")
    depth = payload.get("depth_stage")
    if isinstance(depth, Mapping):
        original, converted = depth.get("original") or {}, depth.get("converted") or {}
        lines.append(f"Depth decoder: converted to {(depth.get('config') or {}).get('activation', '?')} "
                     f"on the frozen encoder by the depth stage ({depth.get('train_frames', '?')} "
                     f"frames); on the validation drives AbsRel "
                     f"{original.get('abs_rel', float('nan')):.4f} -> {converted.get('abs_rel', float('nan')):.4f}.")
    steering = payload.get("steering_stage")
    if isinstance(steering, Mapping):
        lines.append("Steering head: the steering stage's final fit on the frozen encoder over all "
                     f"training sequences (final loss {steering.get('final_loss_deg2', float('nan')):.3g} "
                     "deg²)" + (", with the kinematic prior (the bicycle model's angle of the "
                                "ego-motion)" if (steering.get("config") or {}).get("kinematic")
                                else "") + ".")
    return lines + [""]


def _data(summary: Mapping[str, Any]) -> list[str]:
    train = summary.get("train") or {}
    listed = [("train", d) for d in train.get("datasets", [])]
    listed += [("validation", d) for d in summary.get("validation", [])]
    # The mix lists a data set once per frame gap it is read at: one row per data set here.
    unique = {(split, d.get("kind"), d.get("path")): (split, d) for split, d in reversed(listed)}
    rows = list(reversed(list(unique.values())))
    if not rows:
        return ["## Data", "", "No data summary in the checkpoint or the metadata.", ""]
    lines = ["## Data", "", "| split | data set | frames | size | ground truth |", "|---|---|---|---|---|"]
    for split, d in rows:
        size = "x".join(str(v) for v in d.get("size") or []) or "–"
        lines.append(f"| {split} | `{d.get('path', '?')}` ({d.get('kind', '?')}) | "
                     f"{d.get('frames', '?')} | {size} | {', '.join(d.get('ground_truth') or []) or '–'} |")
    frames = sum(int(d.get("frames") or 0) for split, d in rows if split == "train")
    lines += ["", f"{frames} training frames, {train.get('samples', '?')} samples per epoch, frame "
                  f"gaps {train.get('frame_gaps', '?')}.", ""]
    return lines


def _demo(demo: Path | None) -> list[str]:
    lines = ["## Held-out drive (the demo)", ""]
    if demo is None:
        return lines + ["Not run yet: `unified-perception demo`, then make the card again.", ""]
    record = json.loads((demo / DEMO_FILE).read_text())
    metrics = json.loads((demo / REPORT_METRICS).read_text())
    h, w = record["size_hw"]
    lines += [f"`unified-perception demo`: a synthetic drive of seed {record['seed']} (no training "
              f"or validation sequence uses it), {record['frames']} frames at {h}x{w}, played live "
              f"through the node at {record['rate']:g} x {record['drive_fps']:g} Hz on this CPU; "
              "metric depth (no median scaling), ground truth up to 80 m.", "",
              frames_line(metrics) + ".", "", "Main metric per task (target: issue 9's minimum):",
              ""]
    lines += headline_table(metrics)
    lines += ["", "Every metric (the report's summary.md):", ""] + _score_table(demo / REPORT_SUMMARY)
    return lines + [""]


def _score_table(summary: Path) -> list[str]:
    """The scores table of a report's summary.md (with its baselines' descriptions)."""
    lines = summary.read_text().splitlines() if summary.is_file() else []
    start = next((i for i, line in enumerate(lines) if line.startswith("| task | metric |")), None)
    if start is None:
        return [f"(no scores table in {summary})"]
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    return table
