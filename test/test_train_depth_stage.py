"""The depth refit stage on real synthetic bags: the ELU decoder converted to ReLU, trained towards
the original, its checkpoint and export (no ELU left), its errors, recipe and model card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from unified_perception.train.checkpoint import (ModelConfig, load_checkpoint,
                                                 model_from_checkpoint, save_checkpoint)
from unified_perception.train.depth_stage import (FINAL_CHECKPOINT, RESULTS_JSON, TABLE_MD,
                                                  DepthStageConfig, DepthStageError, read_depth_drive,
                                                  run_depth_stage)
from unified_perception.train.export import export_model
from unified_perception.train.recipe import RecipeError, load_recipe
from unified_perception.train.synthetic_bags import render_synthetic_bags
from trainer_helpers import one_torch_thread  # noqa: F401  (autouse: one torch thread)

SIZE = (64, 128)


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two training drives and one validation drive of 12 frames."""
    return render_synthetic_bags(tmp_path_factory.mktemp("depth_bags"), (0, 19, 5), 12, SIZE)


def _checkpoint(folder: Path, tasks: tuple[str, ...] = ModelConfig.tasks) -> Path:
    config = ModelConfig(input_height=SIZE[0], input_width=SIZE[1], tasks=tasks, preset="light")
    return save_checkpoint(folder / "unified.pt", {"model": config.build(seed=3).state_dict(),
                                                   "model_config": config.to_dict(), "step": 7})


def _op_types(path: Path, scope: str) -> set[str]:
    graph = onnx.load(str(path)).graph
    return {n.op_type for n in graph.node if n.name.startswith(scope)}


def test_depth_frames_come_with_their_ground_truth(bags) -> None:
    images, depth = read_depth_drive(bags[0], SIZE)
    assert images.shape == (12, *SIZE, 3) and images.dtype == np.uint8
    assert depth.shape == (12, *SIZE) and depth.dtype == np.float32
    assert 0.5 < float(np.median(depth[depth > 0])) < 100.0


def test_the_conversion_trains_only_the_depth_decoder_and_exports_without_elu(bags, tmp_path) -> None:
    start = _checkpoint(tmp_path)
    config = DepthStageConfig(checkpoint=start, sequences=tuple(bags[:2]), validation=(bags[2],),
                              steps=60, batch_size=4, lr=1e-3)
    result = run_depth_stage(config, tmp_path / "depth", progress=False)

    assert result.loss_end < 0.7 * result.loss_start, (result.loss_start, result.loss_end)
    assert result.train_frames == 24
    assert result.original.frames == result.converted.frames == 12
    assert result.original.disparity_gap == 0.0
    assert result.converted.disparity_gap < result.converted_before.disparity_gap
    before = load_checkpoint(start)["model"]
    payload = load_checkpoint(tmp_path / "depth" / FINAL_CHECKPOINT)
    changed = {k for k, v in payload["model"].items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("depth.") for k in changed)
    assert payload["model_config"]["head_overrides"]["depth_activation"] == "relu"
    assert payload["step"] == 7 and payload["depth_stage"]["config"]["steps"] == 60
    saved = json.loads((tmp_path / "depth" / RESULTS_JSON).read_text())
    assert saved["converted"]["abs_rel"] == pytest.approx(result.converted.abs_rel)
    assert "| relu, refit | 12 |" in (tmp_path / "depth" / TABLE_MD).read_text()

    original = export_model(model_from_checkpoint(load_checkpoint(start)).eval(), tmp_path / "elu.onnx")
    converted = export_model(model_from_checkpoint(payload).eval(), tmp_path / "relu.onnx")
    assert "Elu" in _op_types(original, "/model/depth/")
    assert "Elu" not in _op_types(converted, "/model/depth/") and "Relu" in _op_types(converted, "/model/depth/")
    session = ort.InferenceSession(str(converted), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape],
                              np.uint8 if i.type == "tensor(uint8)" else np.float32)
             for i in session.get_inputs()}
    depth = session.run(["depth"], feeds)[0]
    assert depth.shape == (1, 1, *SIZE) and np.isfinite(depth).all()


def test_a_checkpoint_without_depth_a_missing_bag_or_a_bad_activation_is_one_clear_error(bags, tmp_path):
    no_depth = _checkpoint(tmp_path, tasks=("semantic",))
    with pytest.raises(DepthStageError, match="no depth decoder"):
        run_depth_stage(DepthStageConfig(checkpoint=no_depth, sequences=(bags[0],), steps=1),
                        tmp_path / "out", progress=False)
    with pytest.raises(DepthStageError, match="not found"):
        run_depth_stage(DepthStageConfig(checkpoint=_checkpoint(tmp_path),
                                         sequences=(tmp_path / "nowhere",), steps=1),
                        tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="'activation' must be one of elu, relu"):
        DepthStageConfig(checkpoint=no_depth, sequences=(bags[0],), activation="gelu")


def test_the_committed_depth_recipe_loads_and_a_mistyped_key_names_itself(tmp_path) -> None:
    recipe = load_recipe(Path("config/train/synthetic_depth.yaml"), out_root=tmp_path)
    assert recipe.kind == "depth" and recipe.depth["activation"] == "relu"
    assert recipe.depth["checkpoint"] == str(tmp_path / "synthetic_steering" / "steering.pt")
    chain = load_recipe(Path("config/train/synthetic_chain.yaml"), out_root=tmp_path)
    assert "synthetic_depth.yaml" not in [Path(s).name for s in chain.stages]   # car heads: ReLU
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nkind: depth\ndepth:\n  checkpoint: x.pt\n  sequences: [a]\n"
                   "  distil_weight: 5\n")
    with pytest.raises(RecipeError, match="distil_weight"):
        load_recipe(bad)


def test_the_model_card_names_the_depth_stage_and_its_effect(tmp_path) -> None:
    from unified_perception.train import model_card
    payload = {"depth_stage": {"train_frames": 8640, "config": {"activation": "relu"},
                               "original": {"abs_rel": 0.1084}, "converted": {"abs_rel": 0.1079}}}
    chain = tmp_path / "chain_with_depth.yaml"     # a chain of light heads trained with ELU
    chain.write_text("name: c\nkind: chain\nstages:\n"
                     f"  - {Path('config/train/synthetic_depth.yaml').resolve()}\n")
    text = "\n".join(model_card._recipe(chain, payload))
    assert "| synthetic_depth | depth | depth decoder on the frozen encoder | to relu; 2000 steps" in text
    assert "converted to relu on the frozen encoder by the depth stage (8640 frames)" in text
    assert "AbsRel 0.1084 -> 0.1079" in text
