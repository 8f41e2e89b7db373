"""The exported ONNX model computes what the PyTorch model computes, frame after frame.

A random model at 64x128 (the `light` preset, and the shipped `car` preset and `car_lean` with the
ego-motion latent and kinematic steering) runs three consecutive frames (batch of 2 cameras) in PyTorch and in
ONNX Runtime, each side feeding its own state_out back as state_in. Float outputs must agree within
1e-4 of the output's range; label outputs must be identical wherever the label is numerically
decided. A label is "decided" where PyTorch's top-2 semantic logits differ by more than 1e-4 and,
for instance/panoptic ids, the pixel's vote is more than 1e-3 px nearer to its center than to the
next one: at near-ties, float rounding differences between the two runtimes may legitimately pick
the other label. Decided pixels must be at least 99% of the image, so the comparison is not vacuous.
"""

from __future__ import annotations


import numpy as np
import onnxruntime as ort
import pytest
import torch

from unified_perception.contract import (TensorInfo, Task, check_model_io, expected_outputs)
from unified_perception.train.export import ContractGraph, export_model
from unified_perception.train.model import build_unified_model

HEIGHT, WIDTH, BATCH, FRAMES = 64, 128, 2, 3
LABELS = ("semantic", "instances", "panoptic")
LOGIT_MARGIN = 1e-4
DISTANCE_MARGIN_PX = 1e-3


def _shift_centers_above_threshold(model, frame: np.ndarray) -> None:
    """Move the random center head's bias so that about half of the heatmap lies above the center
    threshold: a random model otherwise may find no center, leaving the grouping untested."""
    with torch.no_grad():
        out, _ = model(torch.from_numpy(frame))
        shift = model.grouping.threshold - out.center_heatmap_s4.median()
        model.panoptic.center_head.out.bias += shift


SHIPPED = {"latent_ego_motion": True, "steering_kinematic": True}
PRESETS = {"light": {}, "car": SHIPPED, "car_lean": SHIPPED}


@pytest.fixture(scope="module", params=sorted(PRESETS))
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    model = build_unified_model("resnet18", HEIGHT, WIDTH, seed=0, preset=request.param,
                                **PRESETS[request.param]).eval()
    _shift_centers_above_threshold(model, _frames()[0])
    path = export_model(model, tmp_path_factory.mktemp("parity") / "model.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return model, session


def _frames() -> list[np.ndarray]:
    """Three frames of a smooth scene drifting sideways, plus noise (uint8 [N, H, W, 3])."""
    rng = np.random.default_rng(7)
    base = rng.integers(0, 256, (BATCH, HEIGHT // 8, WIDTH // 8 + FRAMES, 3)).astype(np.float32)
    base = base.repeat(8, axis=1).repeat(8, axis=2)
    frames = []
    for t in range(FRAMES):
        img = base[:, :, 8 * t:8 * t + WIDTH] + rng.normal(0, 12, (BATCH, HEIGHT, WIDTH, 3))
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def _decided(model, image: torch.Tensor, state) -> tuple[np.ndarray, np.ndarray]:
    """Masks [N, H, W] of pixels whose semantic label / instance assignment is not a near-tie."""
    with torch.no_grad():
        out, _ = model(image, state)
        top2 = out.semantic_logits.topk(2, dim=1).values
        sem_ok = (top2[:, 0] - top2[:, 1]) > LOGIT_MARGIN
        dist = model.grouping.center_distances(out.center_heatmap_s4, out.center_offsets)
        near2 = dist.topk(2, dim=1, largest=False).values.clamp_min(0).sqrt()
        inst_ok = (near2[:, 1] - near2[:, 0]).reshape(sem_ok.shape) > DISTANCE_MARGIN_PX
    return sem_ok.numpy(), (sem_ok & inst_ok).numpy()


def test_exported_model_passes_the_contract_check(exported):
    model, session = exported
    meta = check_model_io([TensorInfo(i.name, i.type, tuple(i.shape)) for i in session.get_inputs()],
                          [TensorInfo(o.name, o.type, tuple(o.shape)) for o in session.get_outputs()],
                          session.get_modelmeta().custom_metadata_map)
    assert meta.tasks == tuple(Task)
    assert (meta.input_height, meta.input_width) == (HEIGHT, WIDTH)
    names = [o.name for o in session.get_outputs()]
    assert names[:len(expected_outputs(meta.tasks))] == list(expected_outputs(meta.tasks))
    for o in session.get_outputs():
        assert o.shape[0] == "N" and all(isinstance(d, int) for d in o.shape[1:]), (o.name, o.shape)


def test_onnx_matches_pytorch_for_three_frames_with_state_fed_back(exported):
    model, session = exported
    graph = ContractGraph(model).eval()
    out_names = graph.all_output_names
    state_in_names = graph.input_names[1:]
    torch_state = tuple(torch.from_numpy(np.zeros((BATCH, *s.shape[1:]), np.float32))
                        for s in model.initial_state(1).named().values())
    ort_state = [np.zeros((BATCH, *s.shape[1:]), np.float32) for s in torch_state]
    for t, frame in enumerate(_frames()):
        image = torch.from_numpy(frame)
        sem_ok, inst_ok = _decided(model, image,
                                   model.initial_state(1).from_named(
                                       dict(zip(graph.state_suffixes, torch_state))))
        with torch.no_grad():
            expected = [v.numpy() for v in graph(image, *torch_state)]
        got = session.run(out_names, {"image": frame, **dict(zip(state_in_names, ort_state))})
        for name, want, have in zip(out_names, expected, got):
            assert have.dtype == want.dtype and have.shape == want.shape, name
            if name in LABELS:
                ok = sem_ok if name == "semantic" else inst_ok
                assert ok.mean() >= 0.99, f"frame {t}: only {ok.mean():.4f} of {name} decided"
                assert np.array_equal(have[ok], want[ok]), f"frame {t}: '{name}' ids differ"
            elif want.dtype == np.bool_:
                assert np.array_equal(have, want), name
            else:
                span = float(want.max() - want.min())
                err = float(np.abs(have.astype(np.float64) - want).max())
                assert err <= 1e-4 * span, f"frame {t}: '{name}' differs by {err} (range {span})"
        outputs = dict(zip(out_names, got))
        assert outputs["pair_valid"].tolist() == [t > 0] * BATCH
        if t == 0:
            assert np.array_equal(outputs["ego_motion"], np.broadcast_to(np.eye(4), (BATCH, 4, 4)))
        assert outputs["instances"].max() > 0, "the grouping found no instance to compare"
        ort_state = got[len(graph.output_names):]
        torch_state = tuple(torch.from_numpy(v) for v in expected[len(graph.output_names):])


@pytest.mark.parametrize("batch", [1, 3, 4])
def test_dynamic_batch_runs_each_camera_as_if_alone(exported, batch: int) -> None:
    """The batch axis is really dynamic (exported at N=2): N=1, 3, 4 run and every row equals the
    same camera run alone, over two frames with the state fed back."""
    _, session = exported
    names = [o.name for o in session.get_outputs()]
    state_inputs = [i for i in session.get_inputs() if i.name != "image"]
    rng = np.random.default_rng(batch)
    frames = [rng.integers(0, 256, (batch, HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(2)]

    def run(images: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        n = images[0].shape[0]
        state = {i.name: np.zeros((n, *i.shape[1:]), np.float32) for i in state_inputs}
        results = []
        for image in images:
            out = dict(zip(names, session.run(names, {"image": image, **state})))
            state = {i.name: out["state_out_" + i.name[len("state_in_"):]] for i in state_inputs}
            results.append(out)
        return results

    together = run(frames)
    for row in range(batch):
        alone = run([f[row:row + 1] for f in frames])
        for t in range(2):
            assert together[t]["pair_valid"][row] == alone[t]["pair_valid"][0] == (t > 0)
            for name in ("depth", "ego_motion", "motion_prob", "scene_flow", "steering", "latent"):
                want, have = alone[t][name][0], together[t][name][row]
                assert have.shape == want.shape, (batch, row, name)
                span = max(float(np.ptp(want)), 1e-6)
                assert np.abs(have.astype(np.float64) - want).max() <= 1e-4 * span, (batch, t, name)
            same = (alone[t]["semantic"][0] == together[t]["semantic"][row]).mean()
            assert same >= 0.99, (batch, t, same)
