"""Small named batches and model outputs for the loss tests, built directly from tensors."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from unified_perception.contract import IGNORE_ID
from unified_perception.data.sample import PANOPTIC_IGNORE
from unified_perception.train.batch import Batch
from unified_perception.train.geometry import pose_vector_to_matrix
from unified_perception.train.heads.depth import depth_to_disparity as heads_depth_to_disparity
from unified_perception.train.model import UnifiedOutput
from unified_perception.train.window_forward import WindowOutput


def textured_images(batch: int, frames: int, height: int, width: int, seed: int = 0) -> Tensor:
    """``[B, T, 3, H, W]`` smooth random colours in [0, 1] (noise blurred twice: texture at the scale
    of a few pixels, so bilinear warping is well defined)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(batch * frames, 3, height, width, generator=g)
    kernel = torch.ones(3, 1, 3, 3) / 9.0
    for _ in range(2):
        noise = F.conv2d(F.pad(noise, (1, 1, 1, 1), mode="reflect"), kernel, groups=3)
    lo, hi = noise.amin(dim=(2, 3), keepdim=True), noise.amax(dim=(2, 3), keepdim=True)
    return ((noise - lo) / (hi - lo)).reshape(batch, frames, 3, height, width)


def pinhole(batch: int, height: int, width: int, fov_x_deg: float = 90.0) -> Tensor:
    """``[B, 3, 3]`` intrinsics of a centred pinhole camera of ``width``'s horizontal field of view."""
    f = width / 2.0 / math.tan(math.radians(fov_x_deg) / 2.0)
    K = torch.tensor([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
    return K.expand(batch, 3, 3).clone()


def make_batch(images: Tensor, K: Tensor | None = None, offsets: tuple[int, ...] = (-1, 0, 1),
               **fields: Tensor) -> Batch:
    """A :class:`Batch` of ``images`` ``[B, T, 3, H, W]`` with every ground-truth field empty
    (``has_*`` False) except those given in ``fields`` (a given field's ``has_*`` flag defaults to
    True for every sample)."""
    b, t, _, h, w = images.shape
    K = pinhole(b, h, w) if K is None else K
    flags = {"depth_m": "has_depth", "semantic": "has_semantic", "center_heatmap": "has_instances",
             "center_offsets": "has_instances", "thing_mask": "has_instances",
             "motion_mask": "has_motion", "scene_flow": "has_scene_flow",
             "T_cam_src_cam_cur": "has_pose", "steering_rad": "has_steering"}
    no = torch.zeros(b, dtype=torch.bool)
    values: dict[str, object] = dict(
        images=images, network_images=images, K=K, inv_K=torch.linalg.inv(K),
        stamps_s=torch.arange(t, dtype=torch.float64).expand(b, t).clone(),
        frame_gap=torch.ones(b, dtype=torch.int64), offsets=offsets,
        depth_m=torch.zeros(b, 1, h, w), semantic=torch.full((b, h, w), IGNORE_ID),
        panoptic=torch.full((b, h, w), PANOPTIC_IGNORE), center_heatmap=torch.zeros(b, 1, h, w),
        center_offsets=torch.zeros(b, 2, h, w), thing_mask=torch.zeros(b, 1, h, w),
        motion_mask=torch.zeros(b, 1, h, w), scene_flow=torch.zeros(b, 3, h, w),
        T_cam_src_cam_cur=torch.eye(4).expand(b, t, 4, 4).clone(),
        steering_rad=torch.zeros(b, t), **{flag: no for flag in set(flags.values())})
    for name, value in fields.items():
        values[name] = value
        if name in flags and flags[name] not in fields:
            values[flags[name]] = torch.ones(b, dtype=torch.bool)
    return Batch(**values)  # type: ignore[arg-type]


def depth_to_disparity(depth_m: Tensor, depth_range_m: tuple[float, float]) -> Tensor:
    """The disparity in [0.01, 1] that ``heads.depth.disparity_to_depth`` maps to ``depth_m``."""
    return heads_depth_to_disparity(depth_m, *depth_range_m)


def window_output(disparities: tuple[Tensor, ...] | None = None,
                  T_cam_src_cam_cur: Tensor | None = None, **current: Tensor) -> WindowOutput:
    """A :class:`WindowOutput` holding the given predictions (``current``: UnifiedOutput fields)."""
    any_tensor = next(v for v in (*(disparities or ()), T_cam_src_cam_cur, *current.values())
                      if v is not None)
    b = any_tensor.shape[0]
    latent = torch.zeros(b, 4)
    return WindowOutput(UnifiedOutput(latent=latent, disparities=disparities, **current),
                        T_cam_src_cam_cur, latent[:, None].expand(b, 3, 4))


def window_poses(pose_vector: Tensor, offsets: tuple[int, ...] = (-1, 0, 1)) -> Tensor:
    """``T_cam_src_cam_cur`` ``[B, T, 4, 4]``: frame s gets the transform of ``-offset * pose_vector``
    (``[B, 6]`` axis-angle rad, translation m); identity at the centre."""
    return torch.stack([pose_vector_to_matrix(-o * pose_vector) for o in offsets], dim=1)
