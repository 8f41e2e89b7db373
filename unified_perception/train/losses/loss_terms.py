"""The named result of a training step's losses (what ``total.compute_losses`` returns)."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class LossTerms(NamedTuple):
    """A step's losses.

    ``total``: scalar with graph, the sum of ``weighted``. ``weighted``: every computed term times its
    weight at this step (the recipe's weight, the motion ramp applied), with graph, so a balancer
    can re-weight them. ``terms``: the same terms unweighted, detached (for logs). ``automask``:
    ``[B, 1, H, W] bool`` at the finest scale (True = pixel kept), None without a photometric loss.
    """

    total: Tensor
    weighted: dict[str, Tensor]
    terms: dict[str, Tensor]
    automask: Tensor | None = None
