"""Where one engine call on a GPU provider spends its time, and whether the temporal state kept on
the device gives the same outputs as the state kept on the host and as the CPU provider.

For each size and batch (random resnet18 models with the shipped model's heads, as in
``run_all.py``), the p50 ms of:

* ``engine.infer`` -- what the node calls: host pre-processing of the uint8 frames, the session
  run, the outputs copied back and unpacked per camera (the temporal state on the device);
* the bare session on host arrays (``session.run``: inputs copied in, every output copied out);
* the bare session with every input and output on the device (I/O binding): the GPU's own work
  plus the kernel launches, the floor of a call.

Then a sequence of frames through three engines -- GPU with the state on the device (I/O
binding), GPU with the state copied to the host, CPU -- and the largest relative difference of
depth, motion, scene flow and pose between them (device vs host state must be 0: same kernels, the
state only stays where it is).

On CUDA also: the session's start and a device-bound call under other CUDA provider options
(ONNX Runtime's exhaustive cuDNN algorithm search, channels-last convolutions, TF32 off), and a
batch-1 call replayed as a CUDA graph against the same call launched kernel by kernel.

    python benchmarks/bench_gpu_call.py [--sizes 192x640 384x1024] [--provider cuda] [--work DIR]

Needs onnxruntime-gpu and a GPU for ``--provider cuda``; ``--provider cpu`` runs the same
measurements on the CPU (the device I/O is then host memory). Prints a Markdown table; ``--json``
also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnxruntime as ort

from bench_models import engine_step, export_bench_model, machine, machine_line, parse_size
from unified_perception.runtime.engine import CameraFrame, EngineConfig, InferenceEngine
from unified_perception.runtime.providers import ORT_NAMES, cuda_options

COMPARED_FIELDS = ("depth_m", "motion_prob", "scene_flow_m", "T_cam_prev_cam_cur")
"""Float outputs of :class:`FrameResult` compared between the engines of the sequence check."""


def p50_ms(call: Callable[[], Any], calls: int, warmup: int = 5) -> float:
    """Median wall time of ``calls`` calls after ``warmup`` untimed ones, in ms."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return round(float(np.median(times)), 2)


def random_feeds(session: ort.InferenceSession, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A value for every input of ``session`` with ``batch`` rows: random uint8 images, random
    float state, all-true flags."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for arg in session.get_inputs():
        shape = [batch if not isinstance(d, int) else d for d in arg.shape]
        if arg.type == "tensor(uint8)":
            feeds[arg.name] = rng.integers(0, 256, shape, dtype=np.uint8)
        elif arg.type == "tensor(bool)":
            feeds[arg.name] = np.ones(shape, bool)
        else:
            feeds[arg.name] = rng.random(shape, dtype=np.float32)
    return feeds


def device_bound_call(session: ort.InferenceSession, feeds: dict[str, np.ndarray],
                      device: str) -> Callable[[], None]:
    """A session call with every input copied to ``device`` once and every output left there."""
    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, device, 0))
    for arg in session.get_outputs():
        binding.bind_output(arg.name, device)
    return lambda: session.run_with_iobinding(binding)


def call_breakdown(model: Path, provider: str, batch: int, calls: int) -> dict[str, Any]:
    """p50 ms of the engine call, the bare session on host arrays and on device-bound I/O."""
    engine = InferenceEngine(EngineConfig(str(model), providers=(provider,), warmup_batch=batch),
                             log=lambda _: None)
    active = engine.active_provider
    engine_ms = p50_ms(engine_step(engine, batch), calls)
    engine.close()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model), options, providers=[ORT_NAMES[provider], "CPUExecutionProvider"])
    feeds = random_feeds(session, batch)
    host_ms = p50_ms(lambda: session.run(None, feeds), calls)
    device_ms = p50_ms(device_bound_call(session, feeds, "cuda" if provider != "cpu" else "cpu"), calls)
    return {"batch": batch, "provider": active, "engine_ms": engine_ms, "session_host_ms": host_ms,
            "session_device_io_ms": device_ms}


def state_parity(model: Path, provider: str, frames: int) -> dict[str, float]:
    """Largest relative difference over ``frames`` frames (random images, 20 Hz) of the
    :data:`COMPARED_FIELDS` between the GPU engine with its state on the device and (a) the same
    with the state on the host, (b) the CPU provider; and the smallest agreement of the semantic
    masks with the CPU's."""
    configs = {"device": (provider, True), "host": (provider, False), "cpu": ("cpu", False)}
    engines = {name: InferenceEngine(EngineConfig(str(model), providers=(p,), state_on_device=on),
                                     log=lambda _: None) for name, (p, on) in configs.items()}
    h, w = engines["device"].input_size
    rng = np.random.default_rng(3)
    worst = {"device vs host state": 0.0, "device state vs CPU": 0.0, "semantic equal to CPU (min)": 1.0}
    for i in range(frames):
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        out = {name: e.infer([CameraFrame("cam", image, 0.05 * i)])[0] for name, e in engines.items()}
        for key, other in (("device vs host state", "host"), ("device state vs CPU", "cpu")):
            for field in COMPARED_FIELDS:
                a, b = getattr(out["device"], field), getattr(out[other], field)
                if a is not None and b is not None:
                    error = float(np.linalg.norm((a - b).ravel()) / max(np.linalg.norm(b.ravel()), 1e-12))
                    worst[key] = max(worst[key], error)
        worst["semantic equal to CPU (min)"] = min(worst["semantic equal to CPU (min)"],
                                                   float(np.mean(out["device"].semantic == out["cpu"].semantic)))
    for engine in engines.values():
        engine.close()
    return {k: round(v, 6) for k, v in worst.items()}


CUDA_VARIANTS = {
    "ONNX Runtime's defaults": {"cudnn_conv_algo_search": "EXHAUSTIVE"},
    "heuristic algorithm search (the engine's)": {},
    "channels-last convolutions (prefer_nhwc)": {"prefer_nhwc": "1"},
    "TF32 off": {"use_tf32": "0"},
}
"""CUDA provider options compared by :func:`cuda_variants` (over the engine's :func:`cuda_options`)."""


def cuda_session(model: Path, extra: dict[str, str] | None = None) -> ort.InferenceSession:
    """A session on the CUDA provider with the engine's options and ``extra`` over them."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(model), options, providers=[
        ("CUDAExecutionProvider", {**cuda_options(), **(extra or {})}), "CPUExecutionProvider"])


def cuda_variants(model: Path, calls: int) -> list[dict[str, Any]]:
    """Per :data:`CUDA_VARIANTS`: the session's start (creation and first run, s) and the p50 ms of a
    device-bound call at batch 1 and 6."""
    rows = []
    for name, extra in CUDA_VARIANTS.items():
        start = time.perf_counter()
        session = cuda_session(model, extra)
        session.run(None, random_feeds(session, 1))
        row: dict[str, Any] = {"variant": name, "start_s": round(time.perf_counter() - start, 2)}
        for batch in (1, 6):
            row[f"device_io_ms_b{batch}"] = p50_ms(device_bound_call(session, random_feeds(session, batch), "cuda"), calls)
        rows.append(row)
    return rows


def cuda_graph_call(model: Path, calls: int) -> dict[str, Any]:
    """p50 ms of a batch-1 call replayed as a CUDA graph (``enable_cuda_graph``: every input and
    output in a fixed device buffer, the graph captured on the first run) against the same call
    launched kernel by kernel, and the largest relative difference of their outputs. Needs every
    node on the CUDA provider (the export writes ``Atan`` out for this)."""
    plain = cuda_session(model)
    feeds = random_feeds(plain, 1)
    reference = plain.run(None, feeds)
    graph = cuda_session(model, {"enable_cuda_graph": "1"})
    binding = graph.io_binding()
    inputs = {name: ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0) for name, value in feeds.items()}
    for name, value in inputs.items():
        binding.bind_ortvalue_input(name, value)
    outputs = [ort.OrtValue.ortvalue_from_shape_and_type(list(r.shape), r.dtype, "cuda", 0) for r in reference]
    for arg, value in zip(graph.get_outputs(), outputs):
        binding.bind_ortvalue_output(arg.name, value)
    graph_ms = p50_ms(lambda: graph.run_with_iobinding(binding), calls)
    error = max(float(np.abs(v.numpy().astype(np.float64) - r).max() / (np.abs(r).max() + 1e-12))
                for v, r in zip(outputs, reference) if np.issubdtype(r.dtype, np.floating))
    return {"graph_ms": graph_ms, "kernel_by_kernel_ms": p50_ms(device_bound_call(plain, feeds, "cuda"), calls),
            "largest_relative_difference": error}


def markdown(report: dict[str, Any]) -> str:
    lines = ["# One engine call on a GPU provider: where the time goes", "",
             f"Machine: {machine_line(report['machine'])}.", "",
             f"Command: `{report['command']}`; p50 of {report['calls']} calls each.", "",
             "| size | batch | provider | engine.infer ms | session, host arrays ms | "
             "session, device I/O ms | host share of the engine call |", "|---|---:|---|---:|---:|---:|---:|"]
    for size, rows in report["breakdown"].items():
        for r in rows:
            host_share = 1 - r["session_device_io_ms"] / r["engine_ms"]
            lines.append(f"| {size} | {r['batch']} | {r['provider']} | {r['engine_ms']} | {r['session_host_ms']} | "
                         f"{r['session_device_io_ms']} | {host_share:.2f} |")
    lines += ["", f"Temporal state on the device over {report['frames']} frames "
              f"({report['parity_size']}): largest relative difference of depth, motion, scene flow, pose:", ""]
    lines += [f"- {k}: {v}" for k, v in report["state_parity"].items()]
    for size, rows in report.get("cuda_variants", {}).items():
        lines += ["", f"CUDA provider options, {size} (device-bound I/O):", "",
                  "| variant | start s | batch 1 ms | batch 6 ms |", "|---|---:|---:|---:|"]
        lines += [f"| {r['variant']} | {r['start_s']} | {r['device_io_ms_b1']} | {r['device_io_ms_b6']} |" for r in rows]
    for size, g in report.get("cuda_graph", {}).items():
        lines += ["", f"CUDA graph, {size}, batch 1: " + (
            f"{g['graph_ms']} ms replayed vs {g['kernel_by_kernel_ms']} ms kernel by kernel "
            f"(outputs within {g['largest_relative_difference']:.1e} relative)" if "graph_ms" in g
            else f"not run: {g['failed']}")]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["192x640", "384x1024"], help="model sizes HxW")
    parser.add_argument("--provider", default="cuda", choices=("cuda", "tensorrt", "cpu"))
    parser.add_argument("--calls", type=int, default=60, help="timed calls per measurement")
    parser.add_argument("--frames", type=int, default=6, help="frames of the state parity sequence")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the exported models, reused when they are there (default: temporary)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        models = {size: export_bench_model(*parse_size(size), work) for size in args.sizes}
        report: dict[str, Any] = {
            "machine": machine(), "calls": args.calls, "frames": args.frames, "parity_size": args.sizes[0],
            "command": "python benchmarks/bench_gpu_call.py " + " ".join(
                f"--{k} {' '.join(v) if isinstance(v, list) else v}" for k, v in
                (("sizes", args.sizes), ("provider", args.provider), ("calls", args.calls))),
            "breakdown": {size: [call_breakdown(model, args.provider, batch, args.calls) for batch in (1, 6)]
                          for size, model in models.items()},
            "state_parity": state_parity(models[args.sizes[0]], args.provider, args.frames)}
        if args.provider == "cuda":
            report["cuda_variants"] = {size: cuda_variants(m, args.calls) for size, m in models.items()}
            report["cuda_graph"] = {}
            for size, model in models.items():
                try:
                    report["cuda_graph"][size] = cuda_graph_call(model, args.calls)
                except Exception as err:  # e.g. a node left on the CPU: ONNX Runtime refuses the graph
                    report["cuda_graph"][size] = {"failed": str(err)[:300]}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
