"""Steering-angle errors and the constant-prediction baseline, in constant memory.

``rmse = sqrt(mean((pred - gt)^2))`` (the score of the Udacity self-driving-car challenge 2, steering
angle prediction) and ``mae = mean(|pred - gt|)`` over all frames. The baseline predicts the data
set's mean ground-truth angle ``c`` for every frame: its RMSE follows exactly from running sums,
``sqrt(E[g^2] - 2 c E[g] + c^2)``; its MAE needs ``E|g - c|`` for a ``c`` known only at the end,
taken from a fixed histogram of ground truth that also keeps the sum of the angles in each bin:
exact for every bin but the one holding ``c``, where the error is at most that bin's share of frames
times :data:`BASELINE_BIN_RAD` (1e-4 rad = 0.0057 deg).
Angles in radians in, degrees out.
"""

from __future__ import annotations

import math

import numpy as np

BASELINE_BIN_RAD = 1e-4
"""Width (rad) of the ground-truth histogram bins used for the baseline MAE."""
BASELINE_RANGE_RAD = math.pi
"""The histogram spans ``[-pi, pi)`` rad; angles beyond fall into the end bins (still exact there)."""
_BINS = int(round(2 * BASELINE_RANGE_RAD / BASELINE_BIN_RAD))


def _bin_of(angle_rad: np.ndarray) -> np.ndarray:
    index = np.floor((angle_rad + BASELINE_RANGE_RAD) / BASELINE_BIN_RAD).astype(np.int64)
    return np.clip(index, 0, _BINS - 1)


class SteeringAccumulator:
    """Running sums of steering errors and a ground-truth histogram (``2 * 62832`` numbers)."""

    def __init__(self) -> None:
        self.count = 0
        self.sq_error_sum = 0.0
        self.abs_error_sum = 0.0
        self.gt_sum = 0.0
        self.gt_sq_sum = 0.0
        self._bin_counts = np.zeros(_BINS, dtype=np.int64)
        self._bin_sums = np.zeros(_BINS)

    def update(self, pred_rad: float | np.ndarray, gt_rad: float | np.ndarray) -> None:
        """Add predicted and true steering angles (rad), scalars or arrays of one shape."""
        pred = np.asarray(pred_rad, dtype=np.float64).ravel()
        gt = np.asarray(gt_rad, dtype=np.float64).ravel()
        if pred.shape != gt.shape:
            raise ValueError(f"predicted and true steering need one shape, got {np.shape(pred_rad)} "
                             f"and {np.shape(gt_rad)}")
        if not (np.all(np.isfinite(pred)) and np.all(np.isfinite(gt))):
            raise ValueError("steering angles must be finite; drop frames without a valid angle first")
        error = pred - gt
        self.count += gt.size
        self.sq_error_sum += float(np.sum(error * error))
        self.abs_error_sum += float(np.sum(np.abs(error)))
        self.gt_sum += float(np.sum(gt))
        self.gt_sq_sum += float(np.sum(gt * gt))
        bins = _bin_of(gt)
        self._bin_counts += np.bincount(bins, minlength=_BINS)
        self._bin_sums += np.bincount(bins, weights=gt, minlength=_BINS)

    def _baseline_mae_rad(self, mean_rad: float) -> float:
        """``E|g - c|`` for ``c = mean_rad`` from the histogram (see the module docstring)."""
        k = int(_bin_of(np.asarray(mean_rad)))
        below = mean_rad * self._bin_counts[:k].sum() - self._bin_sums[:k].sum()
        above = self._bin_sums[k + 1:].sum() - mean_rad * self._bin_counts[k + 1:].sum()
        inside = abs(self._bin_sums[k] - mean_rad * self._bin_counts[k])
        return float(below + above + inside) / self.count

    def result(self) -> dict[str, float]:
        """``{"rmse_deg", "mae_deg", "baseline_mean_rmse_deg", "baseline_mean_mae_deg"}`` (NaN if empty)."""
        if not self.count:
            return dict.fromkeys(("rmse_deg", "mae_deg", "baseline_mean_rmse_deg",
                                  "baseline_mean_mae_deg"), float("nan"))
        mean = self.gt_sum / self.count
        baseline_mse = max(self.gt_sq_sum / self.count - 2 * mean * mean + mean * mean, 0.0)
        return {"rmse_deg": math.degrees(math.sqrt(self.sq_error_sum / self.count)),
                "mae_deg": math.degrees(self.abs_error_sum / self.count),
                "baseline_mean_rmse_deg": math.degrees(math.sqrt(baseline_mse)),
                "baseline_mean_mae_deg": math.degrees(self._baseline_mae_rad(mean))}

    def merge(self, other: SteeringAccumulator) -> None:
        """Add ``other``'s frames."""
        self.count += other.count
        self.sq_error_sum += other.sq_error_sum
        self.abs_error_sum += other.abs_error_sum
        self.gt_sum += other.gt_sum
        self.gt_sq_sum += other.gt_sq_sum
        self._bin_counts += other._bin_counts
        self._bin_sums += other._bin_sums
