"""The steering stage's parts without bags: windows, folds, errors, configuration."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from unified_perception.train.steering_folds import (MeanStd, mean_angle_baseline, split_folds,
                                                     steering_errors)
from unified_perception.train.steering_stage import SteeringStageConfig
from unified_perception.train.steering_windows import MASKED, build_windows


def test_windows_end_at_the_current_frame_and_mask_slots_before_the_sequence_start() -> None:
    windows = build_windows([np.array([0.1, 0.2, 0.3]), np.array([np.nan, 0.5])], window=3)
    np.testing.assert_array_equal(windows.frames, [[MASKED, MASKED, 0], [MASKED, 0, 1], [0, 1, 2],
                                                   [MASKED, 3, 4]])   # global indices, NaN skipped
    np.testing.assert_allclose(windows.target_rad, [0.1, 0.2, 0.3, 0.5])
    np.testing.assert_array_equal(windows.sequence, [0, 0, 0, 1])
    np.testing.assert_array_equal(windows.mask[:2], [[0, 0, 1], [0, 1, 1]])
    np.testing.assert_array_equal(windows.select([1]).frames, [[MASKED, 3, 4]])


def test_window_stride_spaces_the_slots_and_used_slots_masks_the_oldest() -> None:
    steering = [np.linspace(0.0, 0.5, 6)]
    strided = build_windows(steering, window=3, stride=2)
    np.testing.assert_array_equal(strided.frames[-1], [1, 3, 5])
    np.testing.assert_array_equal(strided.frames[3], [MASKED, 1, 3])
    short = build_windows(steering, window=3, used_slots=2)
    np.testing.assert_array_equal(short.frames[-1], [MASKED, 4, 5])
    with pytest.raises(ValueError, match="used slots"):
        build_windows(steering, window=3, used_slots=4)


def test_folds_hold_out_every_sequence_exactly_once() -> None:
    folds = split_folds(10, 3, seed=1)
    held_out = sorted(i for fold in folds for i in fold)
    assert held_out == list(range(10))
    assert sorted(len(f) for f in folds) == [3, 3, 4]
    assert split_folds(10, 3, seed=1) == folds and split_folds(10, 3, seed=2) != folds
    with pytest.raises(ValueError, match="folds"):
        split_folds(2, 3)


def test_steering_errors_are_in_degrees_and_the_baseline_predicts_the_training_mean() -> None:
    target = np.radians([1.0, -2.0, 3.0])
    errors = steering_errors(target + np.radians([2.0, -2.0, 2.0]), target)
    assert errors.rmse_deg == pytest.approx(2.0) and errors.mae_deg == pytest.approx(2.0)
    baseline = mean_angle_baseline(np.radians([4.0, 6.0]), np.radians([5.0, 8.0]))
    assert baseline.mae_deg == pytest.approx(1.5)
    assert baseline.rmse_deg == pytest.approx(math.sqrt((0.0 + 9.0) / 2))
    summary = MeanStd.of([1.0, 3.0])
    assert (summary.mean, summary.std) == (2.0, pytest.approx(math.sqrt(2.0)))
    assert str(summary) == "2.00 ± 1.41"


@pytest.mark.parametrize("change, field", [
    ({"modes": ("frozen", "sideways")}, "modes"),
    ({"sequences": ()}, "sequences"),
    ({"folds": 1}, "folds"),
    ({"folds": 4}, "folds"),
    ({"steps": 0}, "steps"),
    ({"lr": 0.0}, "lr"),
    ({"weight_decay": -1.0}, "weight_decay"),
    ({"window": 4, "finetune_window": 5}, "finetune_window"),
    ({"checkpoint": None}, "checkpoint"),
])
def test_config_errors_name_the_bad_field(change: dict, field: str) -> None:
    values = {"checkpoint": Path("unified.pt"), "sequences": (Path("a"), Path("b"), Path("c")),
              "folds": 3} | change
    with pytest.raises(ValueError, match=f"'{field}'"):
        SteeringStageConfig(**values)


def test_an_untrained_only_run_needs_no_checkpoint() -> None:
    config = SteeringStageConfig(sequences=["a", "b"], folds=2, modes=["untrained"],
                                 final_fit=False)
    assert config.sequences == (Path("a"), Path("b")) and config.modes == ("untrained",)
