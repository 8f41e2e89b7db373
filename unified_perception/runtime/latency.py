"""Per-frame latency of a model under the runtime engine on this machine (what the node runs).

Times ``InferenceEngine.infer`` on consecutive frames of one camera at the model's input size (no
resize), each with its previous frame in the state, so every task including the two-frame ones
runs. The image content does not change the work: the graph has no data-dependent control flow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unified_perception.runtime.engine import CameraFrame, EngineConfig, InferenceEngine

FRAME_PERIOD_S = 0.1
"""Stamp step between the timed frames (s): well within the engine's max gap, so pairs are valid."""


@dataclass(frozen=True)
class EngineLatency:
    """Milliseconds per frame of ``calls`` timed calls (after ``warmup`` untimed ones)."""

    provider: str
    intra_op_threads: int       # 0 = ONNX Runtime's default
    calls: int
    p50_ms: float
    p95_ms: float
    mean_ms: float

    def describe(self) -> str:
        threads = "default" if self.intra_op_threads == 0 else str(self.intra_op_threads)
        return (f"p50 {self.p50_ms:.0f} ms, p95 {self.p95_ms:.0f} ms, mean {self.mean_ms:.0f} ms "
                f"over {self.calls} frames ({self.provider}, {threads} threads)")


def time_frames(engine: InferenceEngine, calls: int = 10) -> EngineLatency:
    """Time ``calls`` consecutive frames of one camera through a loaded ``engine`` (its state for
    the camera ``"timing"`` is reset first and after)."""
    if calls < 1:
        raise ValueError(f"calls must be at least 1, got {calls}")
    h, w = engine.input_size
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    engine.reset("timing")
    engine.infer([CameraFrame("timing", image, 0.0)])
    seconds = np.empty(calls)
    for k in range(calls):
        start = time.perf_counter()
        engine.infer([CameraFrame("timing", image, FRAME_PERIOD_S * (k + 1))])
        seconds[k] = time.perf_counter() - start
    engine.reset("timing")
    ms = seconds * 1e3
    return EngineLatency(engine.active_provider, engine.config.intra_op_threads, calls,
                         float(np.median(ms)), float(np.percentile(ms, 95)), float(ms.mean()))


def measure_latency(model: str | Path, calls: int = 10, warmup: int = 2,
                    providers: tuple[str, ...] = ("cpu",), intra_op_threads: int = 0) -> EngineLatency:
    """Load ``model`` in the engine (contract checked), time ``calls`` frames, free the engine."""
    engine = InferenceEngine(EngineConfig(str(model), providers=providers, warmup_runs=warmup,
                                          intra_op_threads=intra_op_threads), log=lambda _: None)
    try:
        return time_frames(engine, calls)
    finally:
        engine.close()
