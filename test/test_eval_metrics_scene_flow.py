"""Scene flow EPE / accuracy / outliers (FlowNet3D, HPLFlowNet) exactly at the threshold edges."""

from __future__ import annotations

import numpy as np
import pytest

from unified_perception.eval.metrics import SceneFlowAccumulator


def score_points(errors_x_m: list[float], gt_z_m: list[float]) -> dict:
    """Points with true flow (0, 0, gt_z) and a prediction off by ``error_x`` along x: EPE = |error_x|
    exactly and |gt| = gt_z exactly (one non-zero component each)."""
    gt = np.zeros((1, len(gt_z_m), 3))
    gt[0, :, 2] = gt_z_m
    pred = gt.copy()
    pred[0, :, 0] = errors_x_m
    accumulator = SceneFlowAccumulator()
    accumulator.update(pred, gt, np.ones(gt.shape[:2], bool), np.zeros(gt.shape[:2], bool))
    return accumulator.result()


@pytest.mark.parametrize(("epe_m", "gt_m", "strict", "relaxed", "outlier"), [
    (0.05, 1.0, 0.0, 1.0, 0.0),       # EPE 0.05 is not < 0.05; relative 0.05 is not < 0.05
    (0.0499, 1.0, 1.0, 1.0, 0.0),     # just below the strict EPE edge
    (0.05, 100.0, 1.0, 1.0, 0.0),     # relative 0.0005 < 0.05: accurate through the relative test
    (0.1, 2.0, 0.0, 1.0, 0.0),        # EPE 0.1 is not < 0.1 but relative 0.05 < 0.1; 0.05 is not < 0.05
    (0.1, 1.0, 0.0, 0.0, 0.0),        # EPE 0.1, relative 0.1: neither relaxed-accurate nor an outlier
    (0.2, 2.0, 0.0, 0.0, 0.0),        # relative exactly 0.1 is not > 0.1
    (0.3, 100.0, 1.0, 1.0, 0.0),      # EPE exactly 0.3 is not > 0.3 (relative 0.003 is accurate)
    (0.3001, 100.0, 1.0, 1.0, 1.0),   # just beyond the outlier EPE edge (an accurate outlier)
    (0.2, 1.9, 0.0, 0.0, 1.0),        # relative 0.105 > 0.1
    (0.01, 0.0, 1.0, 1.0, 1.0),       # no true motion: relative error infinite, so any error is
    (0.5, 0.0, 0.0, 0.0, 1.0),        # an outlier; accuracy is decided by the EPE alone
    (0.0, 0.0, 1.0, 1.0, 0.0),        # ... and a perfect still point is accurate, not an outlier
])
def test_accuracy_and_outlier_thresholds_are_strict_at_their_edges(
        epe_m: float, gt_m: float, strict: float, relaxed: float, outlier: float) -> None:
    result = score_points([epe_m], [gt_m])
    assert result["epe3d"] == epe_m
    assert (result["acc_strict"], result["acc_relaxed"], result["outliers"]) == (strict, relaxed, outlier)


def test_moving_points_are_scored_again_and_invalid_points_not_at_all() -> None:
    gt = np.zeros((2, 2, 3))
    gt[..., 2] = 10.0
    pred = gt.copy()
    pred[..., 0] = [[0.0, 1.0], [2.0, 4.0]]          # EPE 0, 1, 2, 4 m
    valid = np.array([[True, True], [True, False]])
    moving = np.array([[False, True], [True, True]])
    accumulator = SceneFlowAccumulator()
    accumulator.update(pred, gt, valid, moving)
    result = accumulator.result()
    # valid EPEs 0, 1, 2: mean 1; accurate only the first (relative 0.1, 0.2 fail); outliers 1 and 2
    assert result["epe3d"] == pytest.approx(1.0)
    assert (result["acc_strict"], result["acc_relaxed"], result["outliers"]) == pytest.approx(
        (1 / 3, 1 / 3, 2 / 3))
    # moving and valid: EPE 1 and 2
    assert result["moving"] == pytest.approx(
        {"epe3d": 1.5, "acc_strict": 0.0, "acc_relaxed": 0.0, "outliers": 1.0})


def test_halves_merged_equal_all_at_once_and_empty_is_nan() -> None:
    assert np.isnan(SceneFlowAccumulator().result()["moving"]["epe3d"])
    rng = np.random.default_rng(6)
    gt = rng.normal(0.0, 1.0, (4, 5, 6, 3))
    pred = gt + rng.normal(0.0, 0.1, gt.shape)
    valid = rng.random(gt.shape[:3]) < 0.9
    moving = rng.random(gt.shape[:3]) < 0.3
    whole, first, second = SceneFlowAccumulator(), SceneFlowAccumulator(), SceneFlowAccumulator()
    whole.update(pred, gt, valid, moving)
    first.update(pred[:2], gt[:2], valid[:2], moving[:2])
    for k in (2, 3):
        second.update(pred[k], gt[k], valid[k], moving[k])
    first.merge(second)
    merged, expected = first.result(), whole.result()
    assert merged.pop("moving") == pytest.approx(expected.pop("moving"), rel=1e-12)
    assert merged == pytest.approx(expected, rel=1e-12)
