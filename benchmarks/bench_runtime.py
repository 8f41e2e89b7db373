"""Latency of the runtime engine: per frame and per batch of N cameras, ONNX Runtime on CPU.

Exports a randomly initialised unified model (all tasks) at the KITTI-like size 192x640 with the
model engineer's ``export_model`` (or takes ``--model``), then times ``InferenceEngine.infer`` for
N = 1, 2, 4 cameras per call on 720x1280 camera images (the resize is part of the timing, as on the
car). Prints a table. Weights are random: speed does not depend on them.

    .venv/bin/python benchmarks/bench_runtime.py [--height 192 --width 640 --cameras 1 2 4 --calls 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run as a script from a checkout

from unified_perception.runtime.engine import CameraFrame, EngineConfig, InferenceEngine
from unified_perception.runtime.preprocess import batch_images
from unified_perception.runtime.state import HostStates


def export_random_model(backbone: str, height: int, width: int, directory: Path) -> Path:
    """A random all-task model at ``height x width`` exported to ONNX (needs the train extra)."""
    from unified_perception.train.export import export_model
    from unified_perception.train.model import build_unified_model

    model = build_unified_model(backbone, input_height=height, input_width=width, seed=0)
    path = directory / f"bench_{backbone}_{height}x{width}.onnx"
    export_model(model, path)
    return path


def time_calls(engine: InferenceEngine, cameras: int, calls: int, camera_hw: tuple[int, int]) -> np.ndarray:
    """Seconds per ``infer`` call with ``cameras`` frames each, consecutive frames (state carried)."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (*camera_hw, 3), dtype=np.uint8) for _ in range(cameras)]
    names = [f"cam{i}" for i in range(cameras)]
    engine.infer([CameraFrame(n, im, 0.0) for n, im in zip(names, images)])   # first frame of each camera
    seconds = np.empty(calls)
    for k in range(calls):
        frames = [CameraFrame(n, im, 0.05 * (k + 1)) for n, im in zip(names, images)]
        start = time.perf_counter()
        results = engine.infer(frames)
        seconds[k] = time.perf_counter() - start
        assert all(r.pair_valid for r in results)
    return seconds


def time_state_copies(engine: InferenceEngine, cameras: int, repeats: int = 10) -> float:
    """Milliseconds to gather and scatter ``cameras`` rows of every state tensor on the host (the
    per-call overhead the host path adds to the session; the GPU path skips it)."""
    host = HostStates(engine.state_specs)
    names = [f"cam{i}" for i in range(cameras)]
    outputs = {s.in_name: s.zeros(cameras) + 1 for s in engine.state_specs}
    host.scatter(names, outputs)
    start = time.perf_counter()
    for _ in range(repeats):
        host.scatter(names, host.gather(names, [False] * cameras))
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an exported ONNX model (default: export a random one)")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = onnxruntime default)")
    parser.add_argument("--camera-size", type=int, nargs=2, default=[720, 1280], metavar=("H", "W"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        model = args.model or export_random_model(args.backbone, args.height, args.width, Path(tmp))
        export_s = time.perf_counter() - start
        start = time.perf_counter()
        engine = InferenceEngine(EngineConfig(model_path=str(model), providers=("cpu",), warmup_runs=2,
                                              intra_op_threads=args.threads), log=print)
        load_s = time.perf_counter() - start
        h, w = engine.input_size
        image = np.random.default_rng(1).integers(0, 256, (*args.camera_size, 3), dtype=np.uint8)
        start = time.perf_counter()
        for _ in range(20):
            batch_images([image], (h, w))
        resize_ms = (time.perf_counter() - start) / 20 * 1e3

        print(f"\nmodel {model.name if args.model else f'random {args.backbone}'} at {h}x{w}, "
              f"provider {engine.active_provider}, {'export ' + format(export_s, '.1f') + ' s, ' if not args.model else ''}"
              f"load + warm-up {load_s:.1f} s, resize {args.camera_size[0]}x{args.camera_size[1]} -> "
              f"{h}x{w}: {resize_ms:.2f} ms/frame\n")
        state_mb = sum(np.prod(s.row_shape) * s.dtype.itemsize for s in engine.state_specs) / 1e6
        print(f"temporal state: {len(engine.state_specs)} tensors, {state_mb:.1f} MB per camera\n")
        print("| cameras per call | batch p50 ms | batch p95 ms | per frame p50 ms | frames/s | state copies ms |")
        print("|---:|---:|---:|---:|---:|---:|")
        for n in args.cameras:
            seconds = time_calls(engine, n, args.calls, tuple(args.camera_size))
            p50, p95 = np.percentile(seconds, [50, 95]) * 1e3
            print(f"| {n} | {p50:.1f} | {p95:.1f} | {p50 / n:.1f} | {n / np.median(seconds):.1f} "
                  f"| {time_state_copies(engine, n):.2f} |")
        engine.close()


if __name__ == "__main__":
    main()
