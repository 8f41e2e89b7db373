"""Depth metrics (Eigen et al. 2014) against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from unified_perception.eval.metrics import (
    DEPTH_METRIC_NAMES, DepthAccumulator, depth_error_by_distance, depth_errors)

# Depths whose products with 1.25 and quotients are exact in binary floating point.
GT_M = np.array([[1.0, 2.0, 4.0, 8.0], [10.0, 16.0, 20.0, 40.0]])


def test_ground_truth_against_itself_is_perfect() -> None:
    errors = depth_errors(GT_M, GT_M)
    assert errors.as_dict() == {"abs_rel": 0.0, "sq_rel": 0.0, "rmse": 0.0, "rmse_log": 0.0,
                                "a1": 1.0, "a2": 1.0, "a3": 1.0}


def test_prediction_25_percent_too_far_fails_only_the_first_threshold() -> None:
    errors = depth_errors(1.25 * GT_M, GT_M)
    assert errors.abs_rel == pytest.approx(0.25)                       # |1.25 d - d| / d
    assert errors.sq_rel == pytest.approx(np.mean(0.0625 * GT_M))      # (0.25 d)^2 / d = 0.0625 d
    assert errors.rmse == pytest.approx(0.25 * np.sqrt(np.mean(GT_M ** 2)))
    assert errors.rmse_log == pytest.approx(np.log(1.25))
    assert errors.a1 == 0.0    # max(d/d*, d*/d) = 1.25 exactly, and 1.25 < 1.25 is false
    assert errors.a2 == 1.0    # 1.25 < 1.5625
    assert errors.a3 == 1.0


def test_median_scaling_removes_a_global_scale() -> None:
    errors = depth_errors(0.5 * GT_M, GT_M, median_scaling=True)
    assert errors.abs_rel == pytest.approx(0.0, abs=1e-15)
    assert errors.rmse == pytest.approx(0.0, abs=1e-13)
    assert (errors.a1, errors.a2, errors.a3) == (1.0, 1.0, 1.0)


def test_only_ground_truth_in_the_open_closed_range_counts_and_prediction_is_clamped() -> None:
    gt = np.array([[0.0, 5.0, 80.0, 81.0, np.nan]])
    pred = np.array([[3.0, 10.0, 100.0, 1.0, 1.0]])
    errors = depth_errors(pred, gt, max_depth_m=80.0)
    # valid: gt 5 (pred 10) and gt 80 (pred 100 clamped to 80): abs_rel = (1 + 0) / 2
    assert errors.abs_rel == pytest.approx(0.5)
    assert errors.a3 == pytest.approx(0.5)       # ratio 2 >= 1.953125, ratio 1 < 1.25
    assert errors.rmse == pytest.approx(np.sqrt(25.0 / 2))


def test_no_valid_pixel_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no pixel has ground-truth depth"):
        depth_errors(np.ones((2, 2)), np.zeros((2, 2)))


def test_accumulator_averages_per_image_not_per_pixel() -> None:
    gt_small = np.array([[2.0, 0.0], [0.0, 0.0]])      # one valid pixel, abs_rel 0.5
    gt_large = np.full((2, 2), 4.0)                     # four valid pixels, abs_rel 0
    accumulator = DepthAccumulator()
    accumulator.update(np.stack([np.full((2, 2), 3.0), gt_large]), np.stack([gt_small, gt_large]))
    assert accumulator.result()["abs_rel"] == pytest.approx(0.25)     # (0.5 + 0) / 2 images
    assert list(accumulator.result()) == list(DEPTH_METRIC_NAMES)
    assert accumulator.num_images == 2


def test_error_by_distance_bins_pixels_by_ground_truth_with_closed_upper_edges() -> None:
    gt = np.array([[5.0, 10.0, 15.0, 30.0]])
    pred = np.array([[6.0, 11.0, 15.0, 30.0]])
    binned = depth_error_by_distance(pred, gt, [0.0, 10.0, 20.0, 25.0])
    # (0, 10]: 5 -> 0.2 and 10 -> 0.1; (10, 20]: 15 -> 0; (20, 25]: none; 30 outside every bin
    np.testing.assert_array_equal(binned.counts, [2, 1, 0])
    np.testing.assert_allclose(binned.abs_rel[:2], [0.15, 0.0])
    assert np.isnan(binned.abs_rel[2])

    accumulator = DepthAccumulator(distance_bins_m=[0.0, 10.0, 20.0, 25.0])
    accumulator.update(pred, gt)
    edges, abs_rel, counts = accumulator.by_distance()
    np.testing.assert_array_equal(edges, binned.bin_edges_m)
    np.testing.assert_array_equal(counts, binned.counts)
    np.testing.assert_allclose(abs_rel, binned.abs_rel)


def test_two_halves_merged_equal_all_at_once() -> None:
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 90.0, size=(6, 8, 10))
    gt[0, :4] = 0.0
    pred = gt * rng.uniform(0.6, 1.5, size=gt.shape)
    whole = DepthAccumulator(median_scaling=True)
    whole.update(pred, gt)
    first, second = DepthAccumulator(median_scaling=True), DepthAccumulator(median_scaling=True)
    first.update(pred[:2], gt[:2])
    for k in range(2, 6):
        second.update(pred[k], gt[k])
    first.merge(second)
    assert first.result() == pytest.approx(whole.result(), rel=1e-12)
    np.testing.assert_allclose(first.by_distance().abs_rel, whole.by_distance().abs_rel, rtol=1e-12)
    with pytest.raises(ValueError, match="cannot merge"):
        first.merge(DepthAccumulator(median_scaling=False))
