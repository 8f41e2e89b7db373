"""Supervised losses, each applied only to the samples whose ground truth exists (``Batch.has_*``).

Every function returns a scalar that is exactly 0, still connected to the prediction's graph, when
no sample of the batch has the field (:func:`reduction.masked_mean`). Weights live in the recipe;
the defaults the literature uses are noted here and set in ``total.LossWeights``:

* semantic cross-entropy, ignore label 255, optionally over the hardest pixels only (Panoptic-DeepLab,
  Cheng et al., 2020: the top 20 % of pixel losses; semantic weight 1);
* instance centres: heatmap MSE (Panoptic-DeepLab weight 200) and offsets L1 on thing pixels
  (weight 0.01, offsets in pixels);
* depth: log-L1 or the scale-invariant log loss (Eigen et al., 2014, with variance focus 0.85);
* relative pose: translation error (m, Euclidean) and rotation geodesic angle (rad) between the
  predicted and ground-truth ``T_cam_src_cam_cur``;
* scene flow end-point error (m), only for windows of adjacent frames (``frame_gap == 1``), as the
  ground truth is the motion between recorded frames t-1 and t;
* motion mask binary cross-entropy.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from unified_perception.contract import IGNORE_ID
from unified_perception.train.losses.reduction import masked_mean, rows

SILOG_VARIANCE_FOCUS = 0.85
"""lambda of Eigen et al. 2014's scale-invariant loss (1 = fully scale invariant)."""
TOP_K_FRACTION = 0.2
"""Panoptic-DeepLab's hard-pixel fraction for the bootstrapped semantic cross-entropy."""
_MIN_DEPTH_M = 1e-3


def semantic_cross_entropy(logits: Tensor, target: Tensor, has: Tensor,
                           top_k_fraction: float | None = None,
                           class_weights: Tensor | None = None) -> Tensor:
    """Cross-entropy of ``logits`` ``[B, C, H, W]`` against train ids ``target`` ``[B, H, W]`` int64
    (255 = ignore) in the samples with ``has`` ``[B] bool``. ``class_weights`` ``[C]`` multiplies
    each pixel's loss by its class's weight (:mod:`unified_perception.train.class_balance`).

    ``top_k_fraction`` in (0, 1] averages only the largest ``ceil(fraction * B*H*W)`` pixel losses
    (ignored pixels count as 0), as Panoptic-DeepLab; None averages over every labelled pixel.
    """
    target = torch.where(rows(has, target), target, torch.full_like(target, IGNORE_ID))
    pixel = F.cross_entropy(logits, target, weight=class_weights, ignore_index=IGNORE_ID,
                            reduction="none")                                          # [B, H, W]
    if top_k_fraction is None:
        return masked_mean(pixel, target != IGNORE_ID)
    if not 0.0 < top_k_fraction <= 1.0:
        raise ValueError(f"top_k_fraction must lie in (0, 1], got {top_k_fraction}")
    k = max(1, math.ceil(top_k_fraction * pixel.numel()))
    return pixel.flatten().topk(k).values.mean()


def center_heatmap_loss(prediction: Tensor, target: Tensor, has: Tensor) -> Tensor:
    """Mean squared error of the instance-centre heatmap ``[B, 1, H, W]`` over samples with ``has``."""
    return masked_mean((prediction - target) ** 2, rows(has, prediction))


def center_offset_loss(prediction: Tensor, target: Tensor, thing_mask: Tensor, has: Tensor) -> Tensor:
    """L1 (px, summed over dy and dx) of the centre offsets ``[B, 2, H, W]``, averaged over thing
    pixels (``thing_mask`` ``[B, 1, H, W]``) of samples with ``has``."""
    error = (prediction - target).abs().sum(dim=1, keepdim=True)
    return masked_mean(error, (thing_mask > 0.5) & rows(has, thing_mask))


def _log_depth_difference(prediction_m: Tensor, target_m: Tensor, has: Tensor) -> tuple[Tensor, Tensor]:
    """``log(prediction) - log(target)`` ``[B, 1, H, W]`` and where it is valid (target > 0 in samples
    with ``has``); invalid pixels hold a finite placeholder."""
    valid = (target_m > 0) & rows(has, target_m)
    target = torch.where(valid, target_m, torch.ones_like(target_m))
    return prediction_m.clamp_min(_MIN_DEPTH_M).log() - target.log(), valid


def depth_log_l1(prediction_m: Tensor, target_m: Tensor, has: Tensor) -> Tensor:
    """Mean ``|log pred - log gt|`` over pixels with ground truth (``target_m`` ``[B, 1, H, W]`` > 0)."""
    difference, valid = _log_depth_difference(prediction_m, target_m, has)
    return masked_mean(difference.abs(), valid)


def depth_silog(prediction_m: Tensor, target_m: Tensor, has: Tensor,
                variance_focus: float = SILOG_VARIANCE_FOCUS) -> Tensor:
    """Eigen et al. 2014's scale-invariant log loss per image, ``mean(d^2) - lambda mean(d)^2`` with
    ``d = log pred - log gt`` over the image's valid pixels, averaged over images with any.

    ``prediction_m``, ``target_m``: ``[B, 1, H, W]`` (m; target 0 = no value).
    """
    difference, valid = _log_depth_difference(prediction_m, target_m, has)
    weights = valid.to(difference.dtype)
    count = weights.sum(dim=(1, 2, 3))
    mean = (difference * weights).sum(dim=(1, 2, 3)) / count.clamp_min(1.0)
    mean_square = (difference ** 2 * weights).sum(dim=(1, 2, 3)) / count.clamp_min(1.0)
    return masked_mean(mean_square - variance_focus * mean ** 2, count > 0)


class PoseLoss(NamedTuple):
    """Mean errors over (sample, source frame): ``translation_m`` Euclidean, ``rotation_rad``
    geodesic angle."""

    translation_m: Tensor
    rotation_rad: Tensor


ROTATION_EMPHASIS_SCALE_RAD = 0.01
"""Ground-truth rotation (rad) at which :func:`relative_pose_loss`'s ``rotation_emphasis`` adds its
full weight (0.01 rad = 0.57 deg, a lane change's frame-to-frame yaw at 10 Hz)."""


def turn_weight(angle_gt_rad: Tensor, emphasis: float) -> Tensor:
    """Weight of each frame pair by its ground-truth turn: ``1 + emphasis * angle /
    ROTATION_EMPHASIS_SCALE_RAD`` (1 for a straight pair; emphasis + 1 at 0.01 rad)."""
    return 1.0 + emphasis * angle_gt_rad / ROTATION_EMPHASIS_SCALE_RAD


def rotation_angle(R: Tensor) -> Tensor:
    """Angle (rad) of rotation matrices ``[..., 3, 3]``: ``atan2(|vee|, trace - 1)``, exact and
    differentiable near 0."""
    vee = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0],
                       R[..., 1, 0] - R[..., 0, 1]], dim=-1)                     # 2 sin(angle) axis
    trace = R.diagonal(dim1=-2, dim2=-1).sum(-1)
    return torch.atan2(torch.linalg.vector_norm(vee, dim=-1), trace - 1.0)


def relative_pose_loss(T_pred: Tensor, T_gt: Tensor, has: Tensor, sources: Sequence[int],
                       rotation_emphasis: float = 0.0) -> PoseLoss:
    """Errors of predicted ``T_cam_src_cam_cur`` ``[B, T, 4, 4]`` against the ground truth for the
    window frames ``sources`` in samples with ``has`` ``[B] bool`` (non-finite ground truth counts as
    missing). The rotation error is the angle of ``R_pred^T R_gt`` (:func:`rotation_angle`).

    ``rotation_emphasis`` > 0 makes the rotation error a weighted mean, each pair weighing
    ``1 + rotation_emphasis * angle_gt / ROTATION_EMPHASIS_SCALE_RAD``. The turns of a drive (lane
    changes, bends) are a few percent of its frame pairs; with a plain mean the pose decoder fits
    the many straight pairs and under-shoots the turns' yaw, which is what the steering reads."""
    index = torch.as_tensor(list(sources), device=T_pred.device)
    pred, gt = T_pred[:, index], T_gt[:, index]                                  # [B, S, 4, 4]
    valid = has[:, None] & torch.isfinite(gt).flatten(2).all(dim=2)              # [B, S]
    gt = torch.where(valid[..., None, None], gt, pred.detach())
    translation = torch.linalg.vector_norm(pred[..., :3, 3] - gt[..., :3, 3], dim=-1)
    angle = rotation_angle(pred[..., :3, :3].transpose(-1, -2) @ gt[..., :3, :3])
    weight = valid.to(angle.dtype)
    if rotation_emphasis > 0:
        weight = weight * turn_weight(rotation_angle(gt[..., :3, :3]).detach(), rotation_emphasis)
    return PoseLoss(masked_mean(translation, valid), masked_mean(angle, weight))


def scene_flow_epe(prediction_m: Tensor, target_m: Tensor, has: Tensor, frame_gap: Tensor) -> Tensor:
    """Mean end-point error (m) of the scene flow ``[B, 3, H, W]`` over every pixel of samples with
    ``has`` and ``frame_gap == 1`` (``[B]``)."""
    valid = has & (frame_gap == 1)
    error = torch.linalg.vector_norm(prediction_m - target_m, dim=1, keepdim=True)
    return masked_mean(error, rows(valid, error))


def moving_flow_epe(independent_flow_m: Tensor, target_m: Tensor, moving: Tensor, has: Tensor,
                    frame_gap: Tensor) -> Tensor:
    """Mean end-point error (m) of the independent flow ``[B, 3, H, W]`` (before the motion mask)
    over the ground-truth moving pixels ``moving`` ``[B, 1, H, W]`` of samples with ``has`` and
    ``frame_gap == 1``; 0 where there are none.

    The scene-flow EPE averages over every pixel, of which a few percent move: its gradient on the
    moving pixels is that small, and it reaches the flow only through the motion probability (zero
    at the start), so the flow stayed at zero. Normalised over the moving pixels, this term gives
    the flow decoder the objects' displacement directly.
    """
    valid = has & (frame_gap == 1)
    error = torch.linalg.vector_norm(independent_flow_m - target_m, dim=1, keepdim=True)
    return masked_mean(error, rows(valid, error) * (moving > 0.5))


def motion_mask_bce(probability: Tensor, target: Tensor, has: Tensor) -> Tensor:
    """Binary cross-entropy of the motion probability ``[B, 1, H, W]`` against the 0/1 mask, over the
    samples with ``has``."""
    bce = F.binary_cross_entropy(probability, target.to(probability.dtype), reduction="none")
    return masked_mean(bce, rows(has, bce))
