"""Self-supervised photometric loss: warp the window's source frames into frame t and compare.

Following monodepth2 (Godard et al., 2019) and the paper's release:

* the per-pixel error is ``0.85 * (1 - SSIM) / 2 + 0.15 * L1`` (averaged over colour channels);
* each source frame s is warped into frame t through the predicted depth of t and the predicted
  ``T_cam_src_cam_cur``; the previous window frame (the pair the motion decoder sees) uses the
  complete flow when scene flow is given (``geometry.points_in_previous_camera``: the point of t
  was at ``T (P - scene_flow)`` in camera t-1), every other source the rigid flow only;
* the per-pixel minimum over the source frames handles occlusions;
* the identity auto-mask: the error of each UNWARPED source (plus noise of 1e-5 to break ties)
  joins the minimum, so a pixel whose best warped error is not below the best identity error
  (a static camera, an object moving with the camera, a textureless region) gives no gradient;
* each of the 4 disparity scales is upsampled to the input size before warping and its loss is
  computed at the input size; the scales' losses are averaged.

Images are the batch's original colours (``Batch.images``), never the network's jittered input.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from unified_perception.contract import DEFAULT_DEPTH_RANGE_M
from unified_perception.train.batch import Batch
from unified_perception.train.geometry import BackprojectDepth, Project3D, points_in_previous_camera
from unified_perception.train.heads.depth import disparity_to_depth
from unified_perception.train.losses.ssim import ssim
from unified_perception.train.window_forward import WindowOutput

SSIM_WEIGHT = 0.85
IDENTITY_NOISE = 1e-5
"""Standard deviation of the noise added to the identity errors (monodepth2) to break ties."""


def photometric_error(prediction: Tensor, target: Tensor) -> Tensor:
    """``0.85 * (1 - SSIM) / 2 + 0.15 * |prediction - target|`` of images ``[N, 3, H, W]`` in
    [0, 1], averaged over channels -> ``[N, 1, H, W]`` (0 = identical)."""
    l1 = (prediction - target).abs().mean(dim=1, keepdim=True)
    dissimilarity = ((1.0 - ssim(prediction, target)) / 2.0).clamp(0.0, 1.0).mean(dim=1, keepdim=True)
    return SSIM_WEIGHT * dissimilarity + (1.0 - SSIM_WEIGHT) * l1


def reproject(source_image: Tensor, depth_m: Tensor, T_cam_src_cam_cur: Tensor, K: Tensor,
              inv_K: Tensor, scene_flow_m: Tensor | None = None) -> Tensor:
    """Frame t as seen in a source frame: sample ``source_image`` ``[N, 3, H, W]`` where each pixel of
    t lands in the source camera.

    ``depth_m`` ``[N, 1, H, W]`` (m, optical z of t); ``T_cam_src_cam_cur`` ``[N, 4, 4]`` maps points of
    camera t into the source camera; ``K``/``inv_K`` ``[N, 3, 3]`` pixels of ``H x W``. With
    ``scene_flow_m`` ``[N, 3, H, W]`` (m, independent motion between the source and t, optical frame
    of t; only meaningful for the previous frame) each point is first moved back by its own motion.
    Pixels that land outside the source take the nearest border colour. Returns ``[N, 3, H, W]``.
    """
    n, _, h, w = depth_m.shape
    backproject = BackprojectDepth(h, w).to(depth_m.device, depth_m.dtype)
    if scene_flow_m is None:
        points, transform = backproject(depth_m, inv_K), T_cam_src_cam_cur
    else:
        points = points_in_previous_camera(depth_m, scene_flow_m, T_cam_src_cam_cur, inv_K,
                                           backproject)
        transform = torch.eye(4, dtype=depth_m.dtype, device=depth_m.device).expand(n, 4, 4)
    grid, _ = Project3D(h, w)(points, K, transform)
    return F.grid_sample(source_image, grid, mode="bilinear", padding_mode="border",
                         align_corners=False)


class PhotometricTerms(NamedTuple):
    """The photometric loss and what it decided, for the motion losses and for inspection.

    ``loss``: scalar, the mean over scales of the mean per-pixel minimum error.
    ``automask``: ``[B, 1, H, W] bool`` at the finest scale, True where the pixel is kept (a warped
    error below every identity error); None without auto-masking.
    ``min_error``: ``[B, 1, H, W]`` the per-pixel minimum at the finest scale (detached).
    ``rigid_error`` / ``complete_error``: ``[B, 1, H, W]`` (detached) the finest-scale error of the
    previous frame warped with the rigid flow only / with the complete flow; None when no scene flow
    was used. The motion-sparsity loss judges static pixels from them.
    """

    loss: Tensor
    automask: Tensor | None
    min_error: Tensor
    rigid_error: Tensor | None = None
    complete_error: Tensor | None = None


def photometric_loss(batch: Batch, output: WindowOutput, scales: int = 4, automask: bool = True,
                     use_scene_flow: bool = True,
                     depth_range_m: tuple[float, float] = DEFAULT_DEPTH_RANGE_M) -> PhotometricTerms:
    """The photometric loss of frame t against the window's other frames (see the module docstring).

    ``output`` must carry disparities and ``T_cam_src_cam_cur`` (a model with depth and pose);
    ``use_scene_flow`` warps the previous frame with the complete flow where the output has
    ``scene_flow_m``; ``depth_range_m`` is the depth head's range (disparity -> depth).
    """
    disparities, T_src = output.current.disparities, output.T_cam_src_cam_cur
    if disparities is None or T_src is None:
        raise ValueError("the photometric loss needs predicted disparities and poses: train a model "
                         "with the depth task and a two-frame task (pose, motion or scene flow)")
    if not batch.source_indices():
        raise ValueError(f"the photometric loss needs source frames; the window offsets "
                         f"{batch.offsets} hold only the centre frame")
    size = batch.size
    scene_flow = output.current.scene_flow_m if use_scene_flow else None
    identity = _identity_errors(batch) if automask else None
    losses, finest = [], None
    for disparity in disparities[:scales]:
        if tuple(disparity.shape[-2:]) != size:
            disparity = F.interpolate(disparity, size=size, mode="bilinear", align_corners=False)
        depth = disparity_to_depth(disparity, *depth_range_m)
        errors = _warped_errors(batch, depth, T_src, scene_flow)                 # [B, S, H, W]
        candidates = errors if identity is None else torch.cat([errors, identity], dim=1)
        min_error, choice = candidates.min(dim=1, keepdim=True)
        losses.append(min_error.mean())
        if finest is None:
            kept = None if identity is None else choice < errors.shape[1]
            finest = PhotometricTerms(min_error, kept, min_error.detach(),
                                      *_previous_frame_errors(batch, depth, T_src, scene_flow, errors))
    return finest._replace(loss=torch.stack(losses).mean())


def _identity_errors(batch: Batch) -> Tensor:
    """Error of each unwarped source frame against t, plus tie-breaking noise -> ``[B, S, H, W]``."""
    target = batch.images[:, batch.center]
    identity = torch.cat([photometric_error(batch.images[:, s], target)
                          for s in batch.source_indices()], dim=1)
    return identity + IDENTITY_NOISE * torch.randn_like(identity)


def _previous_frame_errors(batch: Batch, depth_m: Tensor, T_src: Tensor, scene_flow_m: Tensor | None,
                           errors: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """``(rigid_error, complete_error)`` ``[B, 1, H, W]`` (detached) of the previous frame; None
    without scene flow or without a previous frame in the window."""
    previous = batch.center - 1
    if scene_flow_m is None or previous < 0:
        return None, None
    complete = errors[:, batch.source_indices().index(previous)][:, None].detach()
    with torch.no_grad():
        rigid = _warped_errors(batch, depth_m, T_src, None, (previous,))
    return rigid, complete


def _warped_errors(batch: Batch, depth_m: Tensor, T_src: Tensor, scene_flow_m: Tensor | None,
                   sources: tuple[int, ...] | None = None) -> Tensor:
    """Photometric error of each source frame warped into t -> ``[B, S, H, W]``; the previous window
    frame moves its points by ``scene_flow_m`` when given."""
    target = batch.images[:, batch.center]
    previous = batch.center - 1
    errors = [photometric_error(reproject(batch.images[:, s], depth_m, T_src[:, s], batch.K,
                                          batch.inv_K, scene_flow_m if s == previous else None),
                                target)
              for s in (batch.source_indices() if sources is None else sources)]
    return torch.cat(errors, dim=1)
