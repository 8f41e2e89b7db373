"""The motion terms of the paper's release (Dynamo-Depth style) and their ramp-in.

With the pair (t-1, t), depth ``D`` of t, ``T = T_cam_prev_cam_cur``, the independent flow ``F``
and the motion probability ``p`` (``scene_flow = F * p``, ``train/model.py``):

* complete-flow smoothness (1e-3): edge-aware smoothness of the complete 3D flow
  ``T (P - scene_flow) - P`` (m), so neighbouring points move alike unless the image has an edge;
* flow consistency (5.0): the independent flow should vanish on static pixels: the mean of
  ``|F|_1`` weighted by ``1 - p`` (``p`` detached: this term shapes the flow, not the mask) over
  pixels with disparity above 0.03 (far pixels, the sky, carry no usable motion signal);
* motion sparsity (0.04): ``3 x BCE(p, 0)`` averaged over the pixels judged static. Our rule: a
  pixel is static where the rigid warp of frame t-1 explains it at least as well as the complete
  warp does (``rigid_error <= complete_error`` of :class:`PhotometricTerms`): its own motion does
  not improve the photometric fit, so the mask should say "not moving";
* motion-mask smoothness (0.1): edge-aware smoothness of ``p``.

All four ramp in with :func:`motion_ramp` once the motion phase starts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from unified_perception.train.geometry import BackprojectDepth, points_in_previous_camera
from unified_perception.train.losses.reduction import masked_mean
from unified_perception.train.losses.smoothness import edge_aware_smoothness

MIN_DISPARITY = 0.03
"""Flow consistency applies where the predicted disparity exceeds this (paper notes)."""
SPARSITY_FACTOR = 3.0
"""The motion-sparsity BCE is scaled by 3 (paper notes)."""
RAMP_RATE = 3.0
"""The ramp reaches 1 after ``ramp_steps / RAMP_RATE`` steps (release: ``clip(3 * step / 8000)``)."""


def motion_ramp(step: int, start_step: int, ramp_steps: int) -> float:
    """Weight factor of the motion terms at ``step``: ``clip(3 * (step - start_step) / ramp_steps,
    0, 1)``: 0 before ``start_step``, then linear up to 1 at ``start_step + ramp_steps / 3``."""
    if ramp_steps <= 0:
        return 1.0 if step >= start_step else 0.0
    return float(min(max(RAMP_RATE * (step - start_step) / ramp_steps, 0.0), 1.0))


def complete_flow(depth_m: Tensor, scene_flow_m: Tensor, T_cam_prev_cam_cur: Tensor,
                  inv_K: Tensor) -> Tensor:
    """The complete 3D flow ``T (P - scene_flow) - P`` ``[N, 3, H, W]`` (m) of each pixel's point of t:
    rigid flow minus the rotated scene flow. ``depth_m`` ``[N, 1, H, W]``, ``scene_flow_m``
    ``[N, 3, H, W]`` (optical frame of t), ``T_cam_prev_cam_cur`` ``[N, 4, 4]``, ``inv_K`` ``[N, 3, 3]``."""
    n, _, h, w = depth_m.shape
    backproject = BackprojectDepth(h, w).to(depth_m.device, depth_m.dtype)
    before = points_in_previous_camera(depth_m, scene_flow_m, T_cam_prev_cam_cur, inv_K, backproject)
    return (before - backproject(depth_m, inv_K)).reshape(n, 3, h, w)


def complete_flow_smoothness(flow_m: Tensor, image: Tensor) -> Tensor:
    """Edge-aware smoothness of the complete flow ``[N, 3, H, W]`` (m) against frame t ``[N, 3, H, W]``."""
    return edge_aware_smoothness(flow_m, image)


def flow_consistency_loss(independent_flow_m: Tensor, motion_prob: Tensor, disparity: Tensor,
                          min_disparity: float = MIN_DISPARITY) -> Tensor:
    """Mean ``|F|_1`` (m) weighted by ``1 - p`` over pixels with ``disparity > min_disparity``.

    ``independent_flow_m`` ``[N, 3, H, W]``, ``motion_prob`` and ``disparity`` ``[N, 1, H, W]`` (both
    used as weights only, detached). 0 when the flow vanishes wherever the mask says static.
    """
    weights = (1.0 - motion_prob.detach()) * (disparity.detach() > min_disparity)
    return masked_mean(independent_flow_m.abs().sum(dim=1, keepdim=True), weights)


def static_pixels(rigid_error: Tensor, complete_error: Tensor) -> Tensor:
    """``[N, 1, H, W] bool``: True where the rigid warp explains the pixel at least as well as the
    complete warp (photometric errors of :class:`PhotometricTerms`)."""
    return rigid_error <= complete_error


def motion_sparsity_loss(motion_prob: Tensor, static: Tensor) -> Tensor:
    """``3 x`` the mean ``BCE(p, 0) = -log(1 - p)`` over ``static`` pixels ``[N, 1, H, W]``."""
    bce = F.binary_cross_entropy(motion_prob, torch.zeros_like(motion_prob), reduction="none")
    return SPARSITY_FACTOR * masked_mean(bce, static)


def mask_smoothness_loss(motion_prob: Tensor, image: Tensor) -> Tensor:
    """Edge-aware smoothness of the motion probability ``[N, 1, H, W]`` against frame t."""
    return edge_aware_smoothness(motion_prob, image)
