"""The pose refit stage on real synthetic bags: mirrored targets, the refit, its checkpoint, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unified_perception.train.checkpoint import (ModelConfig, load_checkpoint,
                                                 model_from_checkpoint, save_checkpoint)
from unified_perception.train.geometry import pose_vector_to_matrix
from unified_perception.train.heads.pose import POSE_SCALE
from unified_perception.train.pose_stage import (FINAL_CHECKPOINT, RESULTS_JSON, TABLE_MD,
                                                 PoseStageConfig, PoseStageError, pair_targets,
                                                 read_drive, run_pose_stage)
from unified_perception.train.recipe import RecipeError, load_recipe
from unified_perception.train.synthetic_bags import render_synthetic_bags
from trainer_helpers import one_torch_thread  # noqa: F401  (autouse: one torch thread)

SIZE = (64, 128)


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Seeds 0 and 19 change lanes (yaw up to 2 deg per frame); seed 5 validates."""
    return render_synthetic_bags(tmp_path_factory.mktemp("pose_bags"), (0, 19, 5), 16, SIZE)


def _checkpoint(folder: Path, tasks: tuple[str, ...] = ModelConfig.tasks,
                mean_motion: np.ndarray | None = None) -> Path:
    """A random-weight model; ``mean_motion`` ``[6]``: its pose decoder starts out predicting that
    pose vector for every pair (as a student that learned the drives' mean motion would)."""
    config = ModelConfig(input_height=SIZE[0], input_width=SIZE[1], tasks=tasks, preset="light")
    model = config.build(seed=3)
    if mean_motion is not None:
        with torch.no_grad():
            model.pose.head[-1].bias.copy_(torch.from_numpy(mean_motion / POSE_SCALE))
    return save_checkpoint(folder / "unified.pt", {"model": model.state_dict(),
                                                   "model_config": config.to_dict(), "step": 7})


def test_pair_targets_are_the_relative_camera_motion_and_mirror_as_S_T_S(bags):
    _, T_odom_cam = read_drive(bags[0], SIZE)
    target = torch.from_numpy(pair_targets(T_odom_cam, 2)).double()
    # T_cam_cur_cam_prev maps a point of the earlier camera into the later one.
    point_prev = np.array([1.0, -0.5, 8.0, 1.0])
    in_odom = T_odom_cam[:-2] @ point_prev
    expected = np.einsum("nij,nj->ni", np.linalg.inv(T_odom_cam[2:]), in_odom)
    got = np.einsum("nij,j->ni", pose_vector_to_matrix(target).numpy(), point_prev)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert float(target[:, 1].abs().max()) > np.radians(0.3)     # the drive turns
    mirrored = pair_targets(T_odom_cam, 2, mirror=True)
    # A mirror (x -> -x) turns a left yaw into a right one: rotation (rx, -ry, -rz), t (-tx, ty, tz).
    np.testing.assert_allclose(mirrored, target.float().numpy() * np.array([1, -1, -1, -1, 1, 1]),
                               atol=1e-6)


def test_the_refit_trains_only_the_pose_decoder_and_writes_a_loadable_checkpoint(bags, tmp_path):
    mean_motion = np.concatenate([pair_targets(read_drive(b, SIZE)[1], 1) for b in bags[:2]]).mean(0)
    start = _checkpoint(tmp_path, mean_motion=mean_motion)
    config = PoseStageConfig(checkpoint=start, sequences=tuple(bags[:2]), validation=(bags[2],),
                             steps=150, batch_size=8, lr=1e-3)
    result = run_pose_stage(config, tmp_path / "pose", progress=False)

    assert result.loss_end < 0.85 * result.loss_start, (result.loss_start, result.loss_end)
    assert result.train_pairs == 2 * 2 * (15 + 14)         # two drives, mirrored, gaps 1 and 2
    assert result.before.pairs == result.after.pairs == 15
    assert result.after.translation_error_m < result.before.translation_error_m
    before = load_checkpoint(start)["model"]
    payload = load_checkpoint(tmp_path / "pose" / FINAL_CHECKPOINT)
    changed = {k for k, v in payload["model"].items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("pose.") for k in changed)
    assert payload["step"] == 7 and payload["pose_stage"]["config"]["steps"] == 150
    model_from_checkpoint(payload)
    saved = json.loads((tmp_path / "pose" / RESULTS_JSON).read_text())
    assert saved["after"]["yaw_rmse_deg"] == pytest.approx(result.after.yaw_rmse_deg)
    assert "| refit | 15 |" in (tmp_path / "pose" / TABLE_MD).read_text()


def test_a_checkpoint_without_a_pose_decoder_or_a_missing_bag_is_one_clear_error(bags, tmp_path):
    no_pose = _checkpoint(tmp_path, tasks=("depth",))
    with pytest.raises(PoseStageError, match="no pose decoder"):
        run_pose_stage(PoseStageConfig(checkpoint=no_pose, sequences=(bags[0],), steps=1),
                       tmp_path / "out", progress=False)
    with pytest.raises(PoseStageError, match="not found"):
        run_pose_stage(PoseStageConfig(checkpoint=_checkpoint(tmp_path),
                                       sequences=(tmp_path / "nowhere",), steps=1),
                       tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="'steps' must be an integer of at least 1"):
        PoseStageConfig(checkpoint=no_pose, sequences=(bags[0],), steps=0)


def test_the_committed_pose_recipe_loads_and_a_mistyped_key_names_itself(tmp_path):
    recipe = load_recipe(Path("config/train/synthetic_pose.yaml"), out_root=tmp_path)
    assert recipe.kind == "pose"
    assert recipe.pose["checkpoint"] == str(tmp_path / "synthetic_student" / "best.pt")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nkind: pose\npose:\n  checkpoint: x.pt\n  sequences: [a]\n"
                   "  turn_emphasiss: 5\n")
    with pytest.raises(RecipeError, match="turn_emphasiss"):
        load_recipe(bad)


def test_the_model_card_names_the_pose_stage_and_its_effect() -> None:
    from unified_perception.train import model_card
    payload = {"pose_stage": {"train_pairs": 34128,
                              "before": {"yaw_rmse_deg": 0.063, "translation_error_m": 0.062},
                              "after": {"yaw_rmse_deg": 0.077, "translation_error_m": 0.110}},
               "steering_stage": {"config": {"kinematic": True}, "final_loss_deg2": 0.08}}
    text = "\n".join(model_card._recipe(Path("config/train/synthetic_chain.yaml"), payload))
    assert "| synthetic_pose | pose | pose decoder on the frozen encoder | 2000 steps" in text
    assert "yaw RMSE 0.063 -> 0.077 deg, translation error 0.062 -> 0.110 m" in text
    assert "with the kinematic prior" in text and "600 steps, batch 64, lr 0.0003; kinematic" in text
