"""`export --weights-fp16`: float16 weight storage, float32 compute, the same contract.

A random light model at 64x128 is exported twice, with float32 and with float16 weights. The fp16
file must be about half the size, pass the contract check, keep every graph input and output in
its contract dtype, and give the fp32 file's outputs within the rounding of the weights over three
consecutive frames (state fed back). ONNX Runtime must fold the Cast of every float16 weight into a
float32 constant when it creates the session (what keeps CPU run time that of the fp32 file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

from unified_perception.contract import Task
from unified_perception.runtime.engine import check_session
from unified_perception.train.export import export_model
from unified_perception.train.export_fp16 import MIN_ELEMENTS
from unified_perception.train.model import build_unified_model

HEIGHT, WIDTH, FRAMES = 64, 128, 3
FLOAT_TOLERANCE = 1e-2      # of each float output's range (or largest magnitude)
LABELS_EQUAL = 0.99         # fraction of pixels with the same label


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("fp16")
    model = build_unified_model("resnet18", HEIGHT, WIDTH, seed=0, preset="light")
    return (export_model(model, folder / "fp32.onnx"),
            export_model(model, folder / "fp16.onnx", weights_fp16=True))


def _session(path: Path, optimized: Path | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    if optimized is not None:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _frames() -> list[np.ndarray]:
    """Three frames of a blocky scene drifting sideways plus noise, uint8 [1, H, W, 3]."""
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (1, HEIGHT // 8, WIDTH // 8 + FRAMES, 3)).astype(np.float32)
    base = base.repeat(8, axis=1).repeat(8, axis=2)
    return [np.clip(base[:, :, 8 * t:8 * t + WIDTH] + rng.normal(0, 10, (1, HEIGHT, WIDTH, 3)),
                    0, 255).astype(np.uint8) for t in range(FRAMES)]


def _run(session: ort.InferenceSession) -> list[dict[str, np.ndarray]]:
    """Outputs of the three frames, each frame's state_out fed back as the next state_in."""
    states = [i for i in session.get_inputs() if i.name != "image"]
    names = [o.name for o in session.get_outputs()]
    feed = {i.name: np.zeros([1, *i.shape[1:]], np.float32 if "float" in i.type else np.bool_)
            for i in states}
    results = []
    for frame in _frames():
        out = dict(zip(names, session.run(None, {"image": frame, **feed})))
        feed = {i.name: out["state_out_" + i.name.removeprefix("state_in_")] for i in states}
        results.append(out)
    return results


def test_fp16_weights_halve_the_file_and_keep_the_contract(exports) -> None:
    fp32, fp16 = exports
    assert fp16.stat().st_size < 0.55 * fp32.stat().st_size
    sessions = [_session(p) for p in exports]
    metas = [check_session(s, "model")[0] for s in sessions]
    assert metas[0] == metas[1] and metas[1].tasks == tuple(Task)
    for kind in ("get_inputs", "get_outputs"):
        types = [[(a.name, a.type, tuple(a.shape)) for a in getattr(s, kind)()] for s in sessions]
        assert types[0] == types[1], kind


def test_every_large_weight_is_stored_fp16_and_cast_back_to_fp32(exports) -> None:
    proto = onnx.load(str(exports[1]))
    fp16 = {i.name for i in proto.graph.initializer if i.data_type == TensorProto.FLOAT16}
    assert len(fp16) > 20
    casts = {n.input[0]: n for n in proto.graph.node if n.op_type == "Cast" and n.input[0] in fp16}
    assert set(casts) == fp16, "a float16 weight reaches an op without the Cast to float32"
    assert all(n.attribute[0].i == TensorProto.FLOAT for n in casts.values())
    large_fp32 = [i.name for i in proto.graph.initializer if i.data_type == TensorProto.FLOAT
                  and np.prod(i.dims) >= MIN_ELEMENTS]
    assert not large_fp32


def test_onnx_runtime_folds_the_casts_into_fp32_constants(exports, tmp_path: Path) -> None:
    optimized = tmp_path / "optimized.onnx"
    _session(exports[1], optimized)
    proto = onnx.load(str(optimized))
    assert not [i.name for i in proto.graph.initializer if i.data_type == TensorProto.FLOAT16]


def test_fp16_weights_give_the_fp32_outputs_within_weight_rounding(exports) -> None:
    reference, half = (_run(_session(p)) for p in exports)
    assert reference[-1]["pair_valid"].all()
    for frame, (a, b) in enumerate(zip(reference, half)):
        for name, x in a.items():
            if x.dtype == np.bool_:
                assert np.array_equal(x, b[name]), (frame, name)
            elif x.dtype.kind == "f":
                scale = max(float(np.ptp(x)), float(np.abs(x).max()), 1e-6)
                assert np.abs(x - b[name]).max() <= FLOAT_TOLERANCE * scale, (frame, name)
            else:
                assert np.mean(x == b[name]) >= LABELS_EQUAL, (frame, name)
