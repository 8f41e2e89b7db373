"""Task balancing: how the named loss terms add up to the total the optimiser minimises.

Both balancers are modules mapping ``{name: scalar loss}`` to ``(total, {name: weighted scalar})``.
Given a :class:`LossTerms` (what ``compute_losses`` returns) they balance its ``weighted`` terms,
which already carry the recipe's weights and the motion ramp of their step.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

from unified_perception.train.losses.loss_terms import LossTerms

UNCERTAINTY_TASKS: tuple[str, ...] = (
    "photometric", "semantic", "center_heatmap", "center_offset", "depth", "pose_translation",
    "pose_rotation", "scene_flow", "moving_flow", "motion_mask")
"""Terms that are tasks for uncertainty weighting; regularisers (smoothness, motion priors) and
distillation keep their fixed weights."""


class FixedWeights(nn.Module):
    """``total = sum_i w_i L_i`` with fixed weights ``{name: w_i}``. A term without a weight is an
    error (a typo in a recipe must not silently drop a loss)."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        super().__init__()
        self.weights = dict(weights)

    def forward(self, losses: Mapping[str, Tensor] | LossTerms) -> tuple[Tensor, dict[str, Tensor]]:
        losses = _named(losses)
        missing = sorted(set(losses) - set(self.weights))
        if missing:
            raise KeyError(f"no weight for loss term(s) {missing}; weighted terms: "
                           f"{sorted(self.weights)}")
        weighted = {name: self.weights[name] * value for name, value in losses.items()}
        return _sum(weighted.values()), weighted


class UncertaintyWeighting(nn.Module):
    """Homoscedastic-uncertainty weighting (Kendall, Gal and Cipolla, CVPR 2018): task i has a
    learnable log-variance ``s_i`` (``nn.Parameter``, initially 0) and contributes
    ``exp(-s_i) L_i + s_i``, so a task whose loss stays large is down-weighted while ``+ s_i`` keeps
    the weights from collapsing to 0.

    Terms not named in ``task_names`` pass through with weight 1. Give this module's parameters to
    the optimiser (without weight decay).
    """

    def __init__(self, task_names: Sequence[str]) -> None:
        super().__init__()
        if not task_names or len(set(task_names)) != len(task_names):
            raise ValueError(f"task_names must be distinct and non-empty, got {list(task_names)}")
        self.task_names = tuple(task_names)
        self.log_variances = nn.Parameter(torch.zeros(len(self.task_names)))

    def log_variance(self, name: str) -> Tensor:
        """The current ``s_i`` of task ``name``."""
        return self.log_variances[self.task_names.index(name)]

    def forward(self, losses: Mapping[str, Tensor] | LossTerms) -> tuple[Tensor, dict[str, Tensor]]:
        weighted = {}
        for name, value in _named(losses).items():
            if name in self.task_names:
                s = self.log_variance(name)
                weighted[name] = torch.exp(-s) * value + s
            else:
                weighted[name] = value
        return _sum(weighted.values()), weighted


def _named(losses: Mapping[str, Tensor] | LossTerms) -> Mapping[str, Tensor]:
    return losses.weighted if isinstance(losses, LossTerms) else losses


def _sum(values: Iterable[Tensor]) -> Tensor:
    values = list(values)
    if not values:
        raise ValueError("no loss terms to add up: every weight is 0 or the model predicts none of "
                         "the weighted outputs")
    return torch.stack([v.reshape(()) for v in values]).sum()
