"""The shipped model (models/unified_synthetic_resnet18.onnx) loads under the contract, says how it
was trained, fits the 60 MB cap (GitHub refuses files over 100 MB), and gives every output in the
contract's shape and unit on a synthetic frame pair of a drive it never saw (seed 2026, at the
model's input size)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from unified_perception.contract import THING_CLASS_IDS, NUM_CLASSES, PANOPTIC_LABEL_DIVISOR, Task
from unified_perception.runtime.engine import CameraFrame, EngineConfig, FrameResult, InferenceEngine
from unified_perception.runtime.model_files import SHIPPED_MODEL

MODEL = Path(__file__).resolve().parents[1] / "models" / SHIPPED_MODEL
MAX_MB = 60.0
HELD_OUT_SEED = 2026

pytestmark = pytest.mark.skipif(
    not MODEL.is_file(), reason=f"{MODEL} is absent: it is added by scripts/ship_model.sh once the "
                                "synthetic chain has trained it")


@pytest.fixture(scope="module")
def engine() -> InferenceEngine:
    engine = InferenceEngine(EngineConfig(str(MODEL), providers=("cpu",), warmup_runs=0),
                             log=lambda _: None)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def pair(engine: InferenceEngine):
    """Frames 0 and 1 of a held-out drive and the engine's results for them."""
    from unified_perception.sim.config import CameraConfig, SimConfig
    from unified_perception.sim.world import SyntheticWorld

    h, w = engine.input_size
    world = SyntheticWorld(replace(SimConfig(), seed=HELD_OUT_SEED, frames=2,
                                   camera=replace(CameraConfig(), height=h, width=w)))
    frames = [world.render(i) for i in range(2)]
    results = [engine.infer([CameraFrame("front", f.image_rgb, f.stamp_s)])[0] for f in frames]
    return frames, results


def test_the_shipped_model_fits_the_cap_and_carries_its_recipe(engine: InferenceEngine) -> None:
    assert MODEL.stat().st_size <= MAX_MB * 1e6
    meta = engine.metadata
    assert set(meta.tasks) == set(Task)
    recipe = meta.training_recipe
    assert recipe.get("name") and "status" not in recipe, recipe
    assert recipe["data"]["synthetic"]["train_seeds"] and HELD_OUT_SEED not in (
        recipe["data"]["synthetic"]["train_seeds"] + recipe["data"]["synthetic"]["val_seeds"])
    assert meta.data_summary["train"]["datasets"], meta.data_summary


def test_outputs_have_the_contract_shapes_and_units(engine: InferenceEngine, pair) -> None:
    frames, (first, second) = pair
    h, w = engine.input_size
    meta = engine.metadata
    assert not first.pair_valid and second.pair_valid
    r: FrameResult = second
    assert r.finite
    assert r.depth_m.shape == (h, w) and r.depth_m.dtype == np.float32
    assert meta.depth_min_m <= r.depth_m.min() and r.depth_m.max() <= meta.depth_max_m
    gt = frames[1].depth_m
    finite = np.isfinite(gt) & (gt < 80.0)
    ratio = np.median(r.depth_m[finite]) / np.median(gt[finite])
    assert 1 / 3 < ratio < 3, f"depth is not in metres: median prediction / ground truth {ratio:.2f}"
    assert r.semantic.shape == (h, w) and r.semantic.max() < NUM_CLASSES
    assert r.instances.shape == r.panoptic.shape == (h, w)
    panoptic_class = r.panoptic // PANOPTIC_LABEL_DIVISOR
    stuff = r.instances == 0
    assert np.array_equal(panoptic_class[stuff], r.semantic[stuff])
    # An instance takes the majority thing class of its pixels (Panoptic-DeepLab), one per instance.
    for instance in np.unique(r.instances[~stuff]):
        classes = np.unique(panoptic_class[r.instances == instance])
        assert len(classes) == 1 and int(classes[0]) in THING_CLASS_IDS
    assert np.array_equal(r.panoptic % PANOPTIC_LABEL_DIVISOR, r.instances)
    assert r.motion_prob.shape == (h, w) and 0.0 <= r.motion_prob.min() <= r.motion_prob.max() <= 1.0
    assert r.scene_flow_m.shape == (h, w, 3)
    assert np.abs(r.scene_flow_m).max() < 10.0, "scene flow (m per frame) out of any plausible range"
    T = r.T_cam_prev_cam_cur
    assert T.shape == (4, 4) and np.allclose(T[3], [0, 0, 0, 1])
    assert np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-3)
    assert np.linalg.norm(T[:3, 3]) < 5.0, "ego-motion translation (m per frame) implausible"
    assert abs(r.steering_rad) < 0.7, "steering must be a wheel angle in radians"
    assert r.latent.shape == (meta.latent_dim,)
