"""Steering errors with their mean-angle baseline, and latency percentiles, against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unified_perception.eval.metrics import LatencyAccumulator, SteeringAccumulator


def test_steering_errors_and_mean_baseline_by_hand() -> None:
    gt = np.radians([0.0, 2.0, 4.0, 10.0])         # mean 4 deg
    pred = np.radians([1.0, 2.0, 1.0, 10.0])        # errors 1, 0, -3, 0 deg
    accumulator = SteeringAccumulator()
    accumulator.update(pred, gt)
    result = accumulator.result()
    assert result["rmse_deg"] == pytest.approx(math.sqrt((1 + 0 + 9 + 0) / 4))
    assert result["mae_deg"] == pytest.approx((1 + 0 + 3 + 0) / 4)
    # baseline predicts 4 deg: errors 4, 2, 0, 6
    assert result["baseline_mean_rmse_deg"] == pytest.approx(math.sqrt((16 + 4 + 0 + 36) / 4))
    assert result["baseline_mean_mae_deg"] == pytest.approx((4 + 2 + 0 + 6) / 4)


def test_steering_scalars_arrays_and_merge_agree() -> None:
    rng = np.random.default_rng(3)
    gt = rng.normal(0.05, 0.2, 200)
    pred = gt + rng.normal(0.0, 0.05, 200)
    whole, first, second = SteeringAccumulator(), SteeringAccumulator(), SteeringAccumulator()
    whole.update(pred, gt)
    for p, g in zip(pred[:50], gt[:50]):
        first.update(float(p), float(g))
    second.update(pred[50:], gt[50:])
    first.merge(second)
    assert first.result() == pytest.approx(whole.result(), rel=1e-9)
    baseline = np.degrees(np.abs(gt - gt.mean()))
    assert whole.result()["baseline_mean_mae_deg"] == pytest.approx(baseline.mean(), abs=1e-3)
    assert whole.result()["baseline_mean_rmse_deg"] == pytest.approx(
        math.sqrt(np.mean(baseline ** 2)), rel=1e-9)


def test_latency_percentiles_of_a_known_list_are_nearest_rank() -> None:
    accumulator = LatencyAccumulator()
    for latency in range(1, 101):                      # 1, 2, ..., 100 ms
        accumulator.update(float(latency))
    assert accumulator.result() == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "mean": 50.5,
                                    "max": 100.0}
    small = LatencyAccumulator()
    small.update([12.34, 3.0, 7.25, 40.0])             # sorted 3, 7.25, 12.34, 40
    # ranks ceil(0.5 * 4) = 2 -> 7.25 rounded to 7.2 or 7.3 (0.1 ms); ceil(0.95 * 4) = 4 -> 40
    assert small.percentile_ms(50) == pytest.approx(7.25, abs=0.05)
    assert small.percentile_ms(95) == 40.0
    assert small.percentile_ms(25) == 3.0


def test_latencies_beyond_the_histogram_report_the_maximum() -> None:
    accumulator = LatencyAccumulator()
    accumulator.update([5.0, 20_000.0, 12_000.0])
    assert accumulator.result()["p99"] == 20_000.0
    with pytest.raises(ValueError, match="non-negative"):
        accumulator.update(-1.0)


def test_latency_and_frame_counts_merge() -> None:
    rng = np.random.default_rng(4)
    latencies = rng.uniform(0.0, 300.0, 500)
    whole, first, second = LatencyAccumulator(), LatencyAccumulator(), LatencyAccumulator()
    whole.update(latencies)
    first.update(latencies[:123])
    second.update(latencies[123:])
    first.count_in(3)
    first.count_out(2)
    second.count_in()
    second.count_dropped()
    first.merge(second)
    assert first.result() == pytest.approx(whole.result(), rel=1e-12)
    assert first.frames() == {"in": 4, "out": 2, "dropped": 1}
    expected = np.percentile(np.rint(latencies * 10) / 10, [50, 95, 99], method="inverted_cdf")
    np.testing.assert_allclose([whole.result()[k] for k in ("p50", "p95", "p99")], expected)
