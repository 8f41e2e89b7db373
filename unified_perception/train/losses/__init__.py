"""Training losses, one concern per module, each a function of the named batch / output types.

* ``photometric`` (+ ``ssim``): self-supervised view synthesis with the identity auto-mask;
* ``smoothness``: edge-aware smoothness of disparity and of any field;
* ``motion``: the motion-decoder terms and their ramp-in;
* ``supervised``: losses against ground truth where a sample has it;
* ``distillation``: the student pulled toward frozen teachers;
* ``balancing``: fixed weights or uncertainty weighting;
* ``total``: ``LossWeights`` and ``compute_losses``, what the trainer calls.
"""

from unified_perception.train.losses.balancing import FixedWeights, UncertaintyWeighting
from unified_perception.train.losses.loss_terms import LossTerms
from unified_perception.train.losses.total import LossWeights, build_balancer, compute_losses

__all__ = ["FixedWeights", "LossTerms", "LossWeights", "UncertaintyWeighting", "build_balancer",
           "compute_losses"]
