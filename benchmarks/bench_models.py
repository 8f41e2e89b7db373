"""Models and machine facts shared by the benchmark scripts (not a benchmark itself).

Random weights throughout: on the CPU, speed does not depend on their values. Exporting needs the
train extra (torch); everything else needs only the runtime.
"""

from __future__ import annotations

import itertools
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import onnx
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))   # run as a script from a checkout

from unified_perception.contract import ModelMetadata  # noqa: E402
from unified_perception.runtime.engine import CameraFrame, EngineConfig, InferenceEngine  # noqa: E402

PRESET = "car_lean"
BACKBONE = "resnet18"
SHIPPED_HEAD_OVERRIDES = {"latent_ego_motion": True, "steering_kinematic": True}
"""Head options of the shipped model beyond its preset (the latent and steering reading the
ego-motion, set by the steering stage), so that the random unified model here has its
architecture, operators included. The dedicated models take the preset alone (the ego-motion
options need the pose decoder of a two-frame model)."""


def use_preset(name: str) -> None:
    """Benchmark the ``name`` head preset (``car_lean``, the shipped one, by default; ``light``: the
    fast one) from here on: every later :func:`export_bench_model` builds it (and
    ``train.model.head_options`` refuses an unknown name there)."""
    global PRESET
    PRESET = name


def parse_size(text: str) -> tuple[int, int]:
    """``"192x640"`` -> ``(192, 640)`` (height, width in pixels)."""
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def export_bench_model(height: int, width: int, directory: Path, task: str | None = None,
                       weights_fp16: bool = False) -> Path:
    """A random resnet18 model with the shipped model's heads (:data:`PRESET`,
    :data:`SHIPPED_HEAD_OVERRIDES`) exported to ONNX in ``directory``: the unified model (all
    tasks), or with ``task`` the dedicated single-task model (the same head on its own encoder);
    ``weights_fp16`` stores the weights as float16 (computed in float32)."""
    from unified_perception.train.export import export_model
    from unified_perception.train.model import build_single_task_model, build_unified_model

    if task is None:
        model = build_unified_model(BACKBONE, height, width, seed=0, preset=PRESET, **SHIPPED_HEAD_OVERRIDES)
    else:
        model = build_single_task_model(task, BACKBONE, height, width, seed=0, preset=PRESET)
    suffix = "_fp16w" if weights_fp16 else ""
    path = directory / f"{task or 'unified'}_{BACKBONE}_{PRESET}_{height}x{width}{suffix}.onnx"
    if not path.exists():
        export_model(model, path, weights_fp16=weights_fp16)
    return path


def zero_feeds(session: ort.InferenceSession, batch: int = 1) -> dict[str, np.ndarray]:
    """Inputs of every declared input of ``session`` for ``batch`` rows: a mid-grey image and an
    all-ones state (as after a previous frame, so every two-frame path runs)."""
    feeds = {}
    for arg in session.get_inputs():
        shape = [batch if not isinstance(d, int) else d for d in arg.shape]
        if arg.type == "tensor(uint8)":
            feeds[arg.name] = np.full(shape, 128, np.uint8)
        else:
            feeds[arg.name] = np.ones(shape, np.float32)
    return feeds


def model_gflops(model: Path) -> float:
    """GFLOPs per frame of an exported model (its ``head_gflops`` metadata total), read from the
    file without opening an inference session."""
    proto = onnx.load(str(model), load_external_data=False)
    meta = ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props})
    return float(meta.head_gflops.get("total", 0.0))


def cpu_engine(model: Path, threads: int = 0, spinning: bool = False) -> InferenceEngine:
    """The runtime engine on the CPU provider (``threads`` intra-op threads, 0 = its default;
    ``spinning``: its threads spin-wait between operators, ``intra_op_spinning``)."""
    return InferenceEngine(EngineConfig(str(model), providers=("cpu",), intra_op_threads=threads,
                                        intra_op_spinning=spinning), log=lambda _: None)


def engine_step(engine: InferenceEngine, cameras: int = 1, seed: int = 0) -> Callable[[], Any]:
    """A call of ``engine`` on ``cameras`` random model-size frames, each call the next frame in
    time (state carried, two-frame heads running). The first frame is run here."""
    h, w = engine.input_size
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(cameras)]
    names = [f"cam{i}" for i in range(cameras)]
    step = itertools.count()

    def call() -> Any:
        stamp = 0.05 * next(step)
        return engine.infer([CameraFrame(n, im, stamp) for n, im in zip(names, images)])
    call()
    return call


def interleaved_ms(calls: Mapping[str, Callable[[], Any]], rounds: int, per_round: int
                   ) -> dict[str, np.ndarray]:
    """ms of each call, timed in ``rounds`` rounds of ``per_round`` calls of each in turn, so a
    change of the machine's load hits every candidate alike."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            for _ in range(per_round):
                start = time.perf_counter()
                call()
                samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: np.asarray(v) for name, v in samples.items()}


def machine() -> dict[str, Any]:
    """The machine the numbers come from: CPU model, cores, instruction sets, library versions."""
    cpu, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
    return {
        "cpu": cpu, "cores": os.cpu_count(), "isa": [f for f in wanted if f in flags],
        "python": platform.python_version(), "onnxruntime": ort.__version__,
        "ort_providers": ort.get_available_providers(), "numpy": np.__version__,
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "gpus": gpus(),
    }


def gpus() -> list[str]:
    """``name, driver, memory`` of each NVIDIA GPU as ``nvidia-smi`` lists them (empty without one)."""
    try:
        listing = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in listing.stdout.splitlines() if line.strip()] if listing.returncode == 0 else []


def machine_line(info: dict[str, Any]) -> str:
    """One Markdown line describing :func:`machine`'s result."""
    return (f"{info['cpu']}, {info['cores']} cores ({', '.join(info['isa']) or 'no AVX'}), "
            f"Python {info['python']}, onnxruntime {info['onnxruntime']} "
            f"({', '.join(info['ort_providers'])}), 1-min load average {info['load_average_1min']} "
            f"at the start" + (f"; GPU: {'; '.join(info['gpus'])}" if info.get("gpus") else ""))
