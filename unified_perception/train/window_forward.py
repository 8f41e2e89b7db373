"""Training's view of a model: one forward over a whole frame window.

The car runs the model frame by frame with explicit temporal state (``UnifiedModel.forward``).
Training sees a window ``[B, T, 3, H, W]`` (frames t-1, t, t+1 by default) at once, so it encodes
all T frames in ONE batched encoder call and runs each head only where a loss needs it:

* single-frame heads (depth, segmentation, latent) on the centre frame t;
* the pose decoder on every (source, t) pair: a source s before t gives ``T_cam_s_cam_cur``
  directly from the pair (s, t); a source after t runs the pair (t, s) and inverts it (as monodepth2
  does for frame t+1);
* the motion decoders on the pair (previous frame, t) only, as the car does.

It uses the same modules as ``UnifiedModel.forward``, so what training fits is what the export runs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from unified_perception.train.geometry import invert_rigid
from unified_perception.train.heads.pose import PoseOutput
from unified_perception.train.model import UnifiedModel, UnifiedOutput


class WindowOutput(NamedTuple):
    """A model's predictions for the centre frame t of a window.

    ``current`` holds frame t's outputs in training form (``disparities`` at 4 scales finest first,
    ``depth_m``, segmentation logits / heatmap / offsets, ``latent``) and, where the model has
    two-frame tasks and the window a frame before t, the pair (t-1, t): ``pose_vector``,
    ``T_cam_prev_cam_cur``, ``motion_prob``, ``independent_flow_m``, ``scene_flow_m``.
    ``T_cam_src_cam_cur`` ``[B, T, 4, 4]`` maps points of camera t into each window frame's camera
    (identity at the centre; None without a pose decoder). ``latents`` ``[B, T, D]`` are the frame
    latents of every window frame (``T = 1``, the centre frame only, for a model without two-frame
    tasks: it encodes nothing else).
    """

    current: UnifiedOutput
    T_cam_src_cam_cur: Tensor | None
    latents: Tensor


def window_forward(model: UnifiedModel, images: Tensor, offsets: tuple[int, ...]) -> WindowOutput:
    """Run ``model`` over a window. ``images``: ``[B, T, 3, H, W]`` float RGB in [0, 1] (or uint8
    ``[B, T, H, W, 3]``); ``offsets``: the window's frame offsets (0 = the centre frame t)."""
    if model.pose is None:   # single-frame model: only the centre frame is needed
        center = offsets.index(0)
        images, offsets = images[:, center:center + 1], (0,)
    b, t = images.shape[:2]
    center = offsets.index(0)
    x_all = model.normalize(images.flatten(0, 1))                          # [B*T, 3, H, W]
    feats_all = model.encoder(x_all)
    per_frame = [f.unflatten(0, (b, t)) for f in feats_all]                # [B, T, C, h, w]
    frame = lambda i: [f[:, i] for f in per_frame]                         # noqa: E731
    x = x_all.unflatten(0, (b, t))
    feats = frame(center)
    size = (model.input_height, model.input_width)
    latents = model.latent(feats_all).unflatten(0, (b, t))                  # [B, T, D]
    out: dict[str, Tensor | tuple[Tensor, ...] | None] = {"latent": latents[:, center]}
    if model.depth is not None:
        depth = model.depth(feats, all_scales=True)
        out.update(depth_m=depth.depth_m, disparities=depth.disparities)
    if model.panoptic is not None:
        seg = model.panoptic(feats, size)
        out.update(semantic_logits=seg.semantic_logits, center_heatmap=seg.center_heatmap,
                   center_heatmap_s4=seg.center_heatmap_s4, center_offsets=seg.center_offsets)
    T_src = None
    if model.pose is not None:
        eye = torch.eye(4, dtype=x.dtype, device=x.device).expand(b, 4, 4)
        transforms, prev_pose = [], None
        for i in range(t):
            if i < center:
                pose = model.pose(frame(i), feats)
                transforms.append(pose.T_cam_prev_cam_cur)
                prev_pose = pose if i == center - 1 else prev_pose
            elif i > center:
                transforms.append(invert_rigid(model.pose(feats, frame(i)).T_cam_prev_cam_cur))
            else:
                transforms.append(eye)
        T_src = torch.stack(transforms, dim=1)                               # [B, T, 4, 4]
        if prev_pose is not None:
            out.update(_motion_pair(model, prev_pose, frame(center - 1), feats, x[:, center - 1],
                                    x[:, center], size))
    return WindowOutput(UnifiedOutput(**out), T_src, latents)


def _motion_pair(model: UnifiedModel, pose: PoseOutput, prev: list[Tensor], cur: list[Tensor],
                 prev_x: Tensor, cur_x: Tensor, size: tuple[int, int]) -> dict[str, Tensor | None]:
    """Pose, motion probability and independent flow of the pair (t-1, t)."""
    out: dict[str, Tensor | None] = {"pose_vector": pose.pose_vector,
                                     "T_cam_prev_cam_cur": pose.T_cam_prev_cam_cur,
                                     "pair_valid": torch.ones(cur_x.shape[0], dtype=torch.bool,
                                                              device=cur_x.device)}
    if model.motion is not None:
        prob, flow = model.motion(prev, cur, prev_x, cur_x, pose.pose_vector, size)
        out["motion_prob"] = prob
        if flow is not None:
            out.update(independent_flow_m=flow, scene_flow_m=flow * prob)
    return out
