"""Reductions shared by the losses: means over the pixels (or rows) that a mask selects.

Every loss that only applies where ground truth exists reduces through :func:`masked_mean`, so a
batch without any valid element gives an exact 0 that is still connected to the prediction's graph
(``0 * values`` summed), and DistributedDataParallel sees a gradient for every parameter.
"""

from __future__ import annotations

from torch import Tensor


def masked_mean(values: Tensor, weights: Tensor) -> Tensor:
    """``sum(values * weights) / sum(weights)`` over every element; 0 when ``weights`` sum to 0.

    ``weights`` broadcasts against ``values`` (bool or float, e.g. ``[B, 1, H, W]`` against
    ``[B, 1, H, W]``). ``values`` must be finite everywhere (``0 * nan`` is nan): sanitise the
    targets of invalid elements before computing ``values``.
    """
    weights = weights.to(values.dtype).expand_as(values)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def rows(has: Tensor, like: Tensor) -> Tensor:
    """A ``[B] bool`` sample flag shaped to broadcast over ``like`` ``[B, ...]``: ``[B, 1, ..., 1]``."""
    return has.reshape(has.shape[0], *([1] * (like.dim() - 1)))
