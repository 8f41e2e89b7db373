"""The inference engine on a real exported model (ONNX Runtime, CPU): temporal state per camera,
batching, resets, and refusal of models that break the contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from model_helpers import with_contract_version
from unified_perception.contract import ContractError
from unified_perception.runtime.providers import DISPLAY_NAMES, GPU_PROVIDERS, SHORT_NAMES
from unified_perception.runtime.stats import BatchSnapshot
from unified_perception.runtime.engine import (
    CameraFrame, EngineConfig, FrameResult, InferenceEngine, ModelLoadError)

FLOAT_OUTPUTS = ("depth_m", "motion_prob", "scene_flow_m", "T_cam_prev_cam_cur", "latent")
LABEL_OUTPUTS = ("semantic", "instances", "panoptic")


def _engine(path: Path, **overrides) -> InferenceEngine:
    return InferenceEngine(EngineConfig(model_path=str(path), providers=("cpu",), warmup_runs=1,
                                        **overrides), log=lambda line: None)


def _images(seed: int, n: int, size: tuple[int, int] = (96, 176)) -> list[np.ndarray]:
    """A camera moving over a random texture: frame k is the texture shifted by 3k pixels."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (size[0], size[1] + 3 * n, 3), dtype=np.uint8)
    return [np.ascontiguousarray(texture[:, 3 * k:3 * k + size[1]]) for k in range(n)]


def _assert_same(a: FrameResult, b: FrameResult) -> None:
    assert (a.camera, a.pair_valid, a.dt_s) == (b.camera, b.pair_valid, b.dt_s)
    for name in FLOAT_OUTPUTS:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(y).max())),
                                       err_msg=name)
    for name in LABEL_OUTPUTS:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert np.mean(x == y) > 0.999, name       # float noise may flip a near-tie pixel
    if a.steering_rad is not None:
        assert a.steering_rad == pytest.approx(b.steering_rad, rel=1e-4, abs=1e-5)


def test_three_frames_give_pair_valid_false_true_true_and_depth_in_range(tiny_model_path: Path) -> None:
    engine = _engine(tiny_model_path)
    h, w = engine.input_size
    meta = engine.metadata
    results = [engine.infer([CameraFrame("front", image, 10.0 + 0.1 * k)])[0]
               for k, image in enumerate(_images(0, 3))]
    assert [r.pair_valid for r in results] == [False, True, True]
    assert results[0].dt_s is None and results[0].reset_reason == "first frame"
    assert results[1].dt_s == pytest.approx(0.1) and results[2].reset_reason == ""
    first = results[0]
    assert first.motion_prob is None and first.scene_flow_m is None and first.T_cam_prev_cam_cur is None
    for r in results:
        assert r.depth_m.shape == (h, w) and r.depth_m.dtype == np.float32
        assert np.isfinite(r.depth_m).all()
        assert meta.depth_min_m - 1e-4 <= r.depth_m.min() and r.depth_m.max() <= meta.depth_max_m + 1e-3
        assert r.semantic.shape == (h, w) and r.semantic.dtype == np.uint8
        assert r.semantic.max() < len(meta.class_names)
        assert r.instances.shape == r.panoptic.shape == (h, w) and r.panoptic.dtype == np.int32
        assert r.latent.ndim == 1 and r.latent.dtype == np.float32 and np.isfinite(r.latent).all()
        assert r.steering_rad is not None and np.isfinite(r.steering_rad)
    for r in results[1:]:
        assert r.motion_prob.shape == (h, w) and ((r.motion_prob >= 0) & (r.motion_prob <= 1)).all()
        assert r.scene_flow_m.shape == (h, w, 3) and np.isfinite(r.scene_flow_m).all()
        assert r.T_cam_prev_cam_cur.shape == (4, 4) and r.T_cam_prev_cam_cur.dtype == np.float64
        np.testing.assert_allclose(r.T_cam_prev_cam_cur[3], [0, 0, 0, 1], atol=1e-6)


def test_two_cameras_batched_keep_separate_states(tiny_model_path: Path) -> None:
    front, rear = _images(1, 4), _images(2, 4, size=(64, 128))
    batched, alone = _engine(tiny_model_path, warmup_batch=2), _engine(tiny_model_path)
    for k in range(4):
        stamp = 0.1 * k
        if k == 2:
            batched.reset("rear")
            alone.reset("rear")
        together = batched.infer([CameraFrame("front", front[k], stamp), CameraFrame("rear", rear[k], stamp)])
        separate = [alone.infer([CameraFrame("front", front[k], stamp)])[0],
                    alone.infer([CameraFrame("rear", rear[k], stamp)])[0]]
        for a, b in zip(together, separate):
            _assert_same(a, b)
        if k == 2:
            assert together[0].pair_valid and not together[1].pair_valid
            assert together[1].reset_reason == "reset requested"
    assert [r.pair_valid for r in together] == [True, True]
    # frames per call as the node's /diagnostics reports them (warm-up calls are not counted)
    assert batched.batches.snapshot() == BatchSnapshot(calls=4, frames_per_call=2.0,
                                                       max_frames_per_call=2, window=4)
    assert alone.batches.snapshot() == BatchSnapshot(8, 1.0, 1, 8)


def test_state_on_device_with_io_binding_matches_host_state(tiny_model_path: Path) -> None:
    host, bound = _engine(tiny_model_path), _engine(tiny_model_path, state_on_device=True)
    images = {"a": _images(3, 6), "b": _images(4, 6)}
    schedule = [("a", "b"), ("a", "b"), ("b",), ("a", "b"), ("b", "a"), ("a", "b")]
    for k, cameras in enumerate(schedule):
        if k == 4:
            host.reset("a")
            bound.reset("a")
        frames = [CameraFrame(c, images[c][k], 0.1 * k) for c in cameras]
        for a, b in zip(bound.infer(frames), host.infer(frames)):
            _assert_same(a, b)


def test_a_gap_or_a_time_jump_backwards_restarts_the_state(tiny_model_path: Path) -> None:
    engine = _engine(tiny_model_path, max_gap_s=0.5)
    images = _images(5, 5)
    stamps = [0.0, 0.1, 1.0, 1.1, 0.4]
    results = [engine.infer([CameraFrame("front", image, stamp)])[0]
               for image, stamp in zip(images, stamps)]
    assert [r.pair_valid for r in results] == [False, True, False, True, False]
    assert "exceeds max_gap_s" in results[2].reset_reason and results[2].dt_s is None
    assert "backwards" in results[4].reset_reason
    fresh = _engine(tiny_model_path).infer([CameraFrame("front", images[4], 0.4)])[0]
    _assert_same(results[4], fresh)       # the state really started from zeros
    assert engine.infer([CameraFrame("front", images[0], 0.5)])[0].pair_valid
    engine.reset()
    after = engine.infer([CameraFrame("front", images[1], 0.6)])[0]
    assert not after.pair_valid and after.reset_reason == "reset requested"


def test_the_active_provider_is_logged_once_with_the_reason(tiny_model_path: Path) -> None:
    """Whatever this onnxruntime build offers (CPU only, or onnxruntime-gpu with or without a GPU):
    the engine runs on an offered provider, names it, and names every preferred one it passed over."""
    lines: list[str] = []
    config = EngineConfig(model_path=str(tiny_model_path), warmup_runs=0)
    engine = InferenceEngine(config, log=lines.append)
    offered = {SHORT_NAMES[p] for p in ort.get_available_providers() if p in SHORT_NAMES}
    assert engine.active_provider in offered
    reason = engine.provider_reason
    assert f"using {DISPLAY_NAMES[engine.active_provider]}" in reason or \
        reason.startswith(f"{DISPLAY_NAMES[engine.active_provider]} is the first preferred")
    passed_over = config.providers[:config.providers.index(engine.active_provider)]
    assert all(DISPLAY_NAMES[p] in reason for p in passed_over), reason
    if engine.active_provider == "cpu" and not offered & GPU_PROVIDERS:
        assert "not available in this onnxruntime build" in reason
    assert len(lines) == 1 and reason in lines[0]
    engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        engine.infer([CameraFrame("front", _images(0, 1)[0], 0.0)])


def test_a_model_of_another_contract_version_is_rejected_naming_it(tiny_model_path: Path,
                                                                   tmp_path: Path) -> None:
    path = with_contract_version(tiny_model_path, tmp_path / "v1.onnx", "1.0")
    with pytest.raises(ContractError, match=r"contract version is 1\.0.*Re-export"):
        _engine(path)


def test_a_model_missing_an_output_is_rejected_naming_it(tiny_model_path: Path, tmp_path: Path) -> None:
    model = onnx.load(str(tiny_model_path))
    kept = [o for o in model.graph.output if o.name != "scene_flow"]
    assert len(kept) == len(model.graph.output) - 1
    del model.graph.output[:]
    model.graph.output.extend(kept)
    path = tmp_path / "no_flow.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ContractError, match=r"output 'scene_flow' is missing"):
        _engine(path)


def test_a_missing_or_unreadable_model_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"nope.onnx' is not a file.*unified-perception export"):
        _engine(tmp_path / "nope.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a model")
    with pytest.raises(ModelLoadError, match=r"cannot load.*Re-export"):
        _engine(junk)


def test_malformed_frames_are_rejected_before_running(tiny_model_path: Path) -> None:
    engine = _engine(tiny_model_path)
    image = _images(0, 1)[0]
    with pytest.raises(ValueError, match="once per call"):
        engine.infer([CameraFrame("front", image, 0.0), CameraFrame("front", image, 0.0)])
    with pytest.raises(ValueError, match="camera 'left' image"):
        engine.infer([CameraFrame("left", image[..., 0], 0.0)])
    with pytest.raises(ValueError, match="non-finite stamp"):
        engine.infer([CameraFrame("left", image, float("nan"))])
