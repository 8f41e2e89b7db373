"""Frame latent and the steering head (attention pooling over a window of frame latents).

Frame latent: each stride's encoder features are average-pooled over space (over a few vertical
strips, to keep left from right), concatenated and projected (Linear + LayerNorm) to ``D``; it is
the contract's ``latent`` output and what the steering head sees. The paper trains the steering
head on the FROZEN encoder (training's concern).

Steering head ("AttnPool"): the window ``[N, T, D]`` of the last T frame latents (oldest first,
current last) with a validity mask ``[N, T]`` (1 = a real frame) gets a learned position embedding;
a learned query attends over it with multi-head attention (masked slots excluded); an MLP maps the
pooled vector to the steering angle (rad, positive left).

Kinematic prior (``kinematic``): a car on a path of curvature kappa (1/m) turns its front wheels
by ``atan(wheelbase * kappa)`` (the bicycle model), and kappa is the frame's yaw over the distance
driven, both in the newest frame's ego-motion. With it the head predicts
``atan(scale * yaw * d / (d^2 + d0^2)) + MLP(pooled)`` with ``d`` the distance driven and ``d0``
0.1 m: the curvature ``yaw / d`` while the car moves, faded to zero as it stops (where the yaw of
an estimated ego-motion is noise over a vanishing distance). ``scale`` (m) starts at a car's
wheelbase (2.7 m) and trains with the head (a steering-wheel angle's ratio folds into it), and the
attention pool learns what the curvature misses. Without it the window's attention pool has to
recover the instantaneous yaw from latents it averages over time, and lags a lane change by
about a second.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor, nn

from unified_perception.contract import DEFAULT_STEERING_WINDOW


EGO_MOTION_DIMS = 6
WHEELBASE_M = 2.7
"""Initial ``scale`` of the kinematic prior: a passenger car's wheelbase (m)."""
FADE_DISTANCE_M = 0.1
"""Distance driven between two frames (m) below which the kinematic prior fades out: at 10 Hz,
1 m/s. A stopped car's estimated yaw is noise; divided by a near-zero distance it would steer."""


def kinematic_steering(ego_motion: Tensor, scale: Tensor) -> Tensor:
    """``[N, 6]`` ego-motion (axis-angle rad + translation m of ``T_cam_cur_cam_prev``, camera
    optical frame) -> ``[N, 1]`` front-wheel angle (rad, positive left) of the bicycle model,
    ``atan(scale * curvature)`` with the curvature ``yaw * d / (d^2 + FADE_DISTANCE_M^2)`` (1/m):
    ``yaw / d`` within 1 % from 0.7 m per frame, going to zero as the car stops; zero ego-motion
    (no previous frame) gives zero."""
    squared = (ego_motion[:, 3:6] ** 2).sum(dim=1, keepdim=True)                     # d^2
    curvature = ego_motion[:, 1:2] * torch.sqrt(squared) / (squared + FADE_DISTANCE_M ** 2)
    return torch.atan(scale * curvature)


class FrameLatent(nn.Module):
    """Features at strides 4..32 -> ``[N, D]`` frame latent.

    ``columns`` > 1 averages each map over its rows and over ``columns`` equal vertical strips
    instead of the whole image: a global average is nearly the same for an image and its mirror
    (the encoder's convolutions are translation-equivariant), so it cannot tell a left bend from a
    right one, while strips keep where things are across the image.

    ``ego_motion``: the projection also takes the frame's estimated ego-motion (the pose decoder's
    ``[N, 6]`` axis-angle + translation from the previous frame; zeros without one). The steering
    angle is set by the car's yaw rate, which pooled features of one frame hardly carry.
    """

    def __init__(self, in_channels: tuple[int, ...], dim: int = 256, columns: int = 1,
                 ego_motion: bool = False) -> None:
        super().__init__()
        self.columns, self.ego_motion = columns, ego_motion
        inputs = sum(in_channels) * columns + (EGO_MOTION_DIMS if ego_motion else 0)
        self.project = nn.Sequential(nn.Linear(inputs, dim), nn.LayerNorm(dim))

    @staticmethod
    def pool(features: list[Tensor], columns: int = 1) -> Tensor:
        """Encoder maps ``[N, C_i, h_i, w_i]`` -> ``[N, columns * sum C_i]``: each averaged over
        ``columns`` equal vertical strips (left to right, channel-major; a pixel column that
        straddles two strips counts in both by its overlap), then concatenated (the projection's
        input; the steering stage caches it for a frozen encoder)."""
        pooled = []
        for f in features:
            if columns == 1:
                pooled.append(f.mean(dim=(2, 3)))
            else:
                strips = f.mean(dim=2) @ strip_weights(int(f.shape[-1]), columns, f)       # [N, C, K]
                pooled.append(strips.flatten(1))
        return torch.cat(pooled, dim=1)

    def with_ego_motion(self, pooled: Tensor, ego_motion: Tensor | None) -> Tensor:
        """``pooled`` ``[N, C]`` -> the projection's input: with ``ego_motion`` ``[N, 6]`` (None =
        zeros) appended when this latent takes it."""
        if not self.ego_motion:
            return pooled
        if ego_motion is None:
            ego_motion = pooled.new_zeros(pooled.shape[0], EGO_MOTION_DIMS)
        return torch.cat([pooled, ego_motion.to(pooled.dtype)], dim=1)

    def forward(self, features: list[Tensor], ego_motion: Tensor | None = None) -> Tensor:
        return self.project(self.with_ego_motion(self.pool(features, self.columns), ego_motion))


@functools.lru_cache(maxsize=32)
def _strip_weights(width: int, columns: int) -> np.ndarray:
    edges = np.arange(columns + 1) * (width / columns)
    j = np.arange(width)[:, None]                                                         # [W, 1]
    overlap = np.clip(np.minimum(j + 1, edges[None, 1:]) - np.maximum(j, edges[None, :-1]), 0, None)
    return (overlap * (columns / width)).astype(np.float32)


def strip_weights(width: int, columns: int, like: Tensor) -> Tensor:
    """``[width, columns]``: the share of pixel column j in strip k (its overlap with the strip's
    interval divided by the strip's width ``width / columns``), so ``row_means @ weights`` averages
    each strip exactly. Built from numpy, so the export holds it as one constant."""
    return torch.from_numpy(_strip_weights(width, columns)).to(like.device, like.dtype)


class AttentionPoolSteering(nn.Module):
    """``[N, T, D]`` latents + ``[N, T]`` mask -> steering angle ``[N, 1]`` (rad, positive left)."""

    def __init__(self, dim: int = 256, window: int = DEFAULT_STEERING_WINDOW, heads: int = 4,
                 hidden: int = 128, kinematic: bool = False) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"steering latent dim {dim} must be divisible by heads {heads}")
        self.window, self.heads, self.dim = window, heads, dim
        self.position = nn.Parameter(torch.zeros(1, window, dim))
        self.query = nn.Parameter(torch.randn(1, 1, dim) * dim ** -0.5)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 1))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.kinematic = kinematic
        self.kinematic_scale = (nn.Parameter(torch.tensor(WHEELBASE_M)) if kinematic else None)

    def forward(self, latents: Tensor, mask: Tensor, ego_motion: Tensor | None = None) -> Tensor:
        """``ego_motion`` ``[N, 6]``: the newest frame's (zeros where it has no previous frame);
        required with ``kinematic``, ignored without."""
        t, d = self.window, self.dim           # static ints (only N is dynamic in the export)
        hd = d // self.heads
        x = latents + self.position
        keys = self.key(x).reshape(-1, t, self.heads, hd).permute(0, 2, 3, 1)       # [N, h, hd, T]
        values = self.value(x).reshape(-1, t, self.heads, hd).permute(0, 2, 1, 3)   # [N, h, T, hd]
        query = self.query.reshape(1, self.heads, 1, hd)
        scores = (query @ keys) / math.sqrt(hd)                                     # [N, h, 1, T]
        scores = scores.masked_fill(mask[:, None, None, :] < 0.5, -1e4)
        pooled = (torch.softmax(scores, dim=-1) @ values).reshape(-1, d)            # [N, D]
        if not self.kinematic:
            return self.out(pooled)
        if ego_motion is None:
            raise ValueError("a kinematic steering head needs the newest frame's ego-motion")
        return self.out(pooled) + kinematic_steering(ego_motion, self.kinematic_scale)
