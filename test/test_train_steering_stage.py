"""The steering stage on real synthetic bags: modes, k-fold cross-testing, caching, final fit."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unified_perception.train.backbones import build_backbone
from unified_perception.train.checkpoint import (ModelConfig, load_checkpoint,
                                                 model_from_checkpoint, save_checkpoint)
from unified_perception.train.steering_cache import pool_features, read_sequence
from unified_perception.train.steering_fit import (CachedFeatures, EncodedFeatures, FitSettings,
                                                   WindowSteering, fit, predict, start_at_mean,
                                                   standardize_projection)
from unified_perception.train.steering_stage import (CACHE_DIR, FINAL_CHECKPOINT, RESULTS_JSON,
                                                     TABLE_MD, SteeringStageConfig,
                                                     SteeringStageError, _Stage, run_steering_stage)
from unified_perception.train.steering_windows import build_windows

SIZE = (64, 128)
CPU = torch.device("cpu")
SEEDS = (0, 10, 19)   # 20-frame worlds that steer (left, right, left) by up to 2.3 deg


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread is faster, and far faster on a shared, busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from unified_perception.cli import main as cli_main

    folder = tmp_path_factory.mktemp("steering_bags")
    paths = []
    for seed in SEEDS:
        path = folder / f"drive{seed}"
        assert cli_main(["synth", "--out", str(path), "--frames", "20", "--size", "64x128",
                         "--seed", str(seed), "--quiet"]) == 0
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = ModelConfig(input_height=SIZE[0], input_width=SIZE[1])
    model = config.build(seed=7)
    path = tmp_path_factory.mktemp("unified") / "unified.pt"
    return save_checkpoint(path, {"model": model.state_dict(), "model_config": config.to_dict()})


def _config(checkpoint: Path | None, bags: list[Path], **change) -> SteeringStageConfig:
    values = dict(checkpoint=checkpoint, sequences=bags, folds=3, steps=30, batch_size=16,
                  window=4, finetune_steps=3, finetune_batch_size=2, finetune_window=2, seed=0)
    return SteeringStageConfig(**(values | change))


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory, bags: list[Path], checkpoint: Path):
    out = tmp_path_factory.mktemp("steering_run")
    return out, run_steering_stage(_config(checkpoint, bags), out, progress=False)


def _frozen_parts(checkpoint: Path, bags: list[Path]):
    model = model_from_checkpoint(load_checkpoint(checkpoint))
    sequences = [read_sequence(b, SIZE) for b in bags]
    windows = build_windows([s.steering_rad for s in sequences], window=4)
    return model, sequences, windows


def test_frozen_mode_trains_latent_and_steering_and_leaves_the_encoder_bit_identical(
        stage, checkpoint: Path) -> None:
    out, result = stage
    assert result.mode("frozen").encoder_changed is False
    assert result.mode("untrained").encoder_changed is False
    before = load_checkpoint(checkpoint)["model"]
    after = load_checkpoint(out / FINAL_CHECKPOINT)["model"]    # the final fit is frozen mode
    for key, value in before.items():
        if key.startswith("encoder."):
            assert torch.equal(value, after[key]), key
    for part in ("latent.", "steering."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(part)
                   and after[k].shape == before[k].shape), part


def test_finetune_mode_changes_the_encoder_of_its_copy_only(stage, checkpoint: Path,
                                                             bags: list[Path]) -> None:
    _, result = stage
    assert result.mode("finetune").encoder_changed is True
    assert "fine-tuned" in result.mode("finetune").encoder
    model, sequences, windows = _frozen_parts(checkpoint, bags)
    original = copy.deepcopy(model.encoder.state_dict())
    images = torch.from_numpy(np.concatenate([s.images for s in sequences]))
    encoder = copy.deepcopy(model.encoder)
    module = WindowSteering(copy.deepcopy(model.latent), copy.deepcopy(model.steering.__class__(
        model.latent_dim, 4, 4, 64)), EncodedFeatures(model.normalize, encoder, images,
                                           model.latent.columns))
    fit(module, build_windows([s.steering_rad for s in sequences], window=4, used_slots=2),
        FitSettings(steps=2, batch_size=2, lr=1e-3, weight_decay=0.01, seed=0, encoder_lr=1e-3),
        CPU, progress=False)
    assert any(not torch.equal(original[k], v) for k, v in encoder.state_dict().items()
               if v.is_floating_point())
    assert all(torch.equal(original[k], v) for k, v in model.encoder.state_dict().items())


def test_frozen_training_loss_falls_over_the_steps(stage, checkpoint: Path,
                                                   bags: list[Path]) -> None:
    _, result = stage
    for fold in result.mode("frozen").folds:
        assert fold.loss_end_deg2 < 0.5 * fold.loss_start_deg2
    model, sequences, windows = _frozen_parts(checkpoint, bags)
    pooled = torch.from_numpy(np.concatenate(
        [pool_features(model.normalize, model.encoder, s.images, CPU, model.latent.columns)
         for s in sequences]))
    module = WindowSteering(model.latent, model.steering.__class__(model.latent_dim, 4, 4, 64),
                            CachedFeatures(pooled))
    standardize_projection(module, windows)
    start_at_mean(module.steering, float(windows.target_rad.mean()))

    def train_mse() -> float:
        return float(np.mean(np.degrees(predict(module, windows, CPU) - windows.target_rad) ** 2))

    before = train_mse()
    assert before == pytest.approx(np.var(np.degrees(windows.target_rad)), rel=1e-4)  # the mean
    fit(module, windows, FitSettings(30, 16, 3e-4, 0.01, seed=0), CPU, progress=False)
    assert train_mse() < 0.5 * before


def test_untrained_mode_says_which_encoder_init_it_used(stage, tmp_path: Path, checkpoint: Path,
                                                        bags: list[Path]) -> None:
    _, result = stage
    assert result.mode("untrained").encoder == "random init (seed 0), frozen"
    imagenet = build_backbone("resnet18").state_dict() | {"fc.weight": torch.zeros(1000, 512),
                                                          "fc.bias": torch.zeros(1000)}
    weights = tmp_path / "resnet18_imagenet.pth"
    torch.save(imagenet, weights)
    config = _config(checkpoint, bags, modes=["untrained"], imagenet_weights=weights, steps=5,
                     final_fit=False)
    untrained = run_steering_stage(config, tmp_path / "out", progress=False).mode("untrained")
    assert untrained.encoder.startswith(f"ImageNet weights from {weights}")
    assert untrained.encoder_changed is False


def test_k_fold_holds_out_every_sequence_once_and_reports_mean_and_std(stage,
                                                                        bags: list[Path]) -> None:
    out, result = stage
    held_out = sorted(s for fold in result.fold_sequences for s in fold)
    assert held_out == sorted(str(b) for b in bags)
    written = json.loads((out / RESULTS_JSON).read_text())
    table = (out / TABLE_MD).read_text()
    assert [m["mode"] for m in written["modes"]] == ["frozen", "finetune", "untrained"]
    for mode in written["modes"]:
        assert [f["test_sequences"] for f in mode["folds"]] == \
            [list(f) for f in written["fold_sequences"]]
        for key in ("rmse_deg", "mae_deg", "baseline_rmse_deg", "baseline_mae_deg"):
            assert set(mode[key]) == {"mean", "std"} and mode[key]["mean"] > 0
        rmse = [f["test"]["rmse_deg"] for f in mode["folds"]]
        assert mode["rmse_deg"]["mean"] == pytest.approx(np.mean(rmse))
        assert mode["rmse_deg"]["std"] == pytest.approx(np.std(rmse, ddof=1))
        assert f"| {mode['mode']} | {mode['encoder']} |" in table
    # frozen and untrained encoders differ, and each sequence is also encoded mirrored, so each
    # sequence has four feature cache entries
    assert len(list((out / CACHE_DIR).glob("*.npz"))) == 2 * 2 * len(bags)


def test_final_fit_writes_a_checkpoint_whose_trained_head_the_model_loads(stage,
                                                                         checkpoint: Path) -> None:
    out, result = stage
    assert result.final_checkpoint == out / FINAL_CHECKPOINT
    payload = load_checkpoint(result.final_checkpoint)
    shipped = model_from_checkpoint(payload, result.final_checkpoint)
    original = model_from_checkpoint(load_checkpoint(checkpoint))
    assert shipped.options.steering_window == 4 and shipped.steering.window == 4
    assert payload["steering_stage"]["config"]["window"] == 4
    assert not torch.equal(shipped.steering.out[-1].weight, original.steering.out[-1].weight)
    assert not torch.equal(shipped.latent.project[0].weight, original.latent.project[0].weight)
    shipped.eval()
    output, _ = shipped(torch.zeros(1, *SIZE, 3, dtype=torch.uint8))
    assert torch.isfinite(output.steering_rad).all()


def test_a_rerun_reads_the_feature_cache_and_repeats_the_results(tmp_path: Path, checkpoint: Path,
                                                                  bags: list[Path]) -> None:
    config = _config(checkpoint, bags, modes=["frozen"], folds=2, steps=10, final_fit=False)
    first = run_steering_stage(config, tmp_path, progress=False)
    cached = {p: p.stat().st_mtime_ns for p in (tmp_path / CACHE_DIR).glob("*.npz")}
    second = run_steering_stage(config, tmp_path, progress=False)
    assert len(cached) == 2 * len(bags)                 # as recorded and mirrored
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / CACHE_DIR).glob("*.npz")} == cached
    assert second.mode("frozen").folds == first.mode("frozen").folds


def test_a_missing_sequence_is_named(tmp_path: Path, checkpoint: Path, bags: list[Path]) -> None:
    config = _config(checkpoint, [bags[0], tmp_path / "nowhere", bags[2]])
    with pytest.raises(SteeringStageError, match=r"sequences\[1\] .*nowhere"):
        run_steering_stage(config, tmp_path / "out", progress=False)


def test_mirrored_sequences_double_the_training_windows_and_flip_the_steering(
        tmp_path: Path, checkpoint: Path, bags: list[Path]) -> None:
    """Each fold trains on its training sequences and their mirror images (images flipped
    left-right, steering negated) and tests on its held-out sequences as recorded."""
    plain = run_steering_stage(_config(checkpoint, bags, modes=["frozen"], steps=2, mirror=False,
                                       final_fit=False), tmp_path / "plain", progress=False)
    mirrored = run_steering_stage(_config(checkpoint, bags, modes=["frozen"], steps=2,
                                          final_fit=False), tmp_path / "mirrored", progress=False)
    for one, two in zip(plain.mode("frozen").folds, mirrored.mode("frozen").folds):
        assert two.train_windows == 2 * one.train_windows
        assert two.test.samples == one.test.samples and two.baseline == one.baseline
    stage = _Stage(_config(checkpoint, bags), tmp_path / "stage", progress=False)
    n = len(bags)
    assert stage.sequence_count == 2 * n and stage.train_sequences([1]) == [0, 2, n, n + 2]
    recorded, flipped = stage.sequence(0), stage.sequence(n)
    assert np.array_equal(flipped.images, recorded.images[:, :, ::-1])
    assert np.array_equal(flipped.steering_rad, -recorded.steering_rad, equal_nan=True)


def test_ego_motion_latent_trains_in_every_mode_and_ships(tmp_path: Path, checkpoint: Path,
                                                         bags: list[Path]) -> None:
    """With ``ego_motion`` the latent also takes the pose decoder's ego-motion of each frame: the
    cached features end with 6 ego-motion columns (zeros on a drive's first frame), every mode
    trains, and the final model takes the previous frame into its latent."""
    config = _config(checkpoint, bags, steps=2, finetune_steps=1, ego_motion=True, mirror=False)
    result = run_steering_stage(config, tmp_path, progress=False)
    assert [m.mode for m in result.modes] == ["frozen", "finetune", "untrained"]
    stage = _Stage(config, tmp_path, progress=False)
    model, _ = stage.model_for("frozen")
    pooled, _ = stage.frozen_features(model)
    first = stage.sequence(0).images.shape[0]
    assert pooled.shape[1] == model.latent.project[0].in_features + 6
    assert torch.all(pooled[0, -6:] == 0) and torch.any(pooled[1:first, -6:] != 0)
    shipped = model_from_checkpoint(load_checkpoint(result.final_checkpoint)).eval()
    assert shipped.latent.ego_motion
    frames = torch.from_numpy(stage.sequence(0).images[:2])
    with torch.no_grad():
        alone, _ = shipped(frames[1:2])
        _, state = shipped(frames[:1])
        after, _ = shipped(frames[1:2], state)
    assert not torch.allclose(alone.latent, after.latent)      # the ego-motion reached the latent


def test_a_kinematic_head_trains_on_cached_ego_motion_and_ships(tmp_path: Path, checkpoint: Path,
                                                                bags: list[Path]) -> None:
    """``kinematic``: the head adds the bicycle model's angle of the newest frame's ego-motion; the
    frozen mode trains it (its wheelbase scale too) and the final checkpoint builds that head."""
    with pytest.raises(ValueError, match="'kinematic' reads the pose decoder's ego-motion"):
        _config(checkpoint, bags, kinematic=True)
    config = _config(checkpoint, bags, modes=("frozen",), steps=20, ego_motion=True,
                     kinematic=True, mirror=False)
    result = run_steering_stage(config, tmp_path, progress=False)
    shipped = model_from_checkpoint(load_checkpoint(result.final_checkpoint)).eval()
    assert shipped.steering.kinematic and shipped.latent.ego_motion
    assert float(shipped.steering.kinematic_scale.detach()) != pytest.approx(2.7, abs=1e-9)
    assert result.mode("frozen").rmse_deg.mean > 0
