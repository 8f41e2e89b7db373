"""k-fold cross-testing over sequences and the steering errors it reports.

Sequences (not frames) are split into folds, so the frames of a test sequence are never seen in
training (neighbouring frames of one drive are nearly identical). Each fold is held out once;
errors are reported per fold and as mean ± sample standard deviation over folds, next to the
mean-angle baseline (predict the training folds' mean steering angle for every test frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from unified_perception.eval.metrics.steering import SteeringAccumulator


def split_folds(num_sequences: int, folds: int, seed: int = 0) -> list[tuple[int, ...]]:
    """Test sequence indices of each fold: a seeded shuffle of ``range(num_sequences)`` cut into
    ``folds`` parts of near-equal size (every sequence in exactly one part)."""
    if not 2 <= folds <= num_sequences:
        raise ValueError(f"folds ({folds}) must lie in 2..number of sequences ({num_sequences})")
    order = np.random.default_rng(seed).permutation(num_sequences)
    return [tuple(sorted(int(i) for i in part)) for part in np.array_split(order, folds)]


@dataclass(frozen=True)
class SteeringErrors:
    """Errors of predicted against true steering angles, in degrees."""

    rmse_deg: float
    mae_deg: float
    samples: int


def steering_errors(pred_rad: np.ndarray, target_rad: np.ndarray) -> SteeringErrors:
    """Root-mean-square and mean absolute error (degrees) of ``pred_rad`` against ``target_rad``
    (both ``[S]`` rad, finite), as the evaluation defines them
    (:class:`unified_perception.eval.metrics.steering.SteeringAccumulator`)."""
    pred, target = np.asarray(pred_rad, np.float64), np.asarray(target_rad, np.float64)
    if pred.shape != target.shape or pred.ndim != 1 or pred.size == 0:
        raise ValueError(f"steering errors need two equal non-empty [S] arrays, got "
                         f"{pred.shape} and {target.shape}")
    errors = SteeringAccumulator()
    errors.update(pred, target)
    scores = errors.result()
    return SteeringErrors(scores["rmse_deg"], scores["mae_deg"], errors.count)


def mean_angle_baseline(train_target_rad: np.ndarray,
                        test_target_rad: np.ndarray) -> SteeringErrors:
    """Errors of predicting the training targets' mean angle for every test sample."""
    mean = float(np.mean(train_target_rad))
    return steering_errors(np.full(len(test_target_rad), mean), test_target_rad)


@dataclass(frozen=True)
class MeanStd:
    """Mean and sample standard deviation (ddof 1; 0 for one value) of per-fold values."""

    mean: float
    std: float

    @classmethod
    def of(cls, values: Sequence[float]) -> "MeanStd":
        array = np.asarray(values, np.float64)
        std = float(np.std(array, ddof=1)) if array.size > 1 else 0.0
        return cls(float(np.mean(array)), std)

    def __str__(self) -> str:
        return "n/a" if math.isnan(self.mean) else f"{self.mean:.2f} ± {self.std:.2f}"
