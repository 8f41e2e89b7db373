"""Models and machine facts shared by the benchmark scripts (not a benchmark itself).

Random weights throughout: on the CPU, speed does not depend on their values. Exporting needs the
train extra (torch); everything else needs only the runtime.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))   # run as a script from a checkout

PRESET = "light"
BACKBONE = "resnet18"


def export_light_model(height: int, width: int, directory: Path, tasks: tuple[str, ...] | None = None,
                       name: str = "unified") -> Path:
    """A random ``light`` resnet18 model (all tasks, or ``tasks``) exported to ONNX in ``directory``."""
    from unified_perception.train.export import export_model
    from unified_perception.train.model import build_unified_model

    kwargs: dict[str, Any] = {} if tasks is None else {"tasks": tasks}
    model = build_unified_model(BACKBONE, input_height=height, input_width=width, seed=0,
                                preset=PRESET, **kwargs)
    path = directory / f"{name}_{BACKBONE}_{PRESET}_{height}x{width}.onnx"
    export_model(model, path)
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
    }


def machine_line(info: dict[str, Any]) -> str:
    """One Markdown line describing :func:`machine`'s result."""
    return (f"{info['cpu']}, {info['cores']} cores ({', '.join(info['isa']) or 'no AVX'}), "
            f"Python {info['python']}, onnxruntime {info['onnxruntime']} "
            f"({', '.join(info['ort_providers'])}), 1-min load average {info['load_average_1min']} "
            f"at the start")
