"""Depth decoder: top-down fusion with attention-gated skips, 4-scale soft-bin disparity, metric depth.

Following the paper's release: each stride's features are projected to ``width`` channels; the
coarse map is upsampled and fused with the next finer skip after an additive attention gate
(Oktay et al., 2018) has weighted the skip; disparity is predicted at H/8, H/4, H/2 and H. Each
disparity head predicts a 32-bin distribution (softmax) over ``linspace(0.01, 1)`` and returns its
expectation, so disparity lies in [0.01, 1]. Depth maps that range GEOMETRICALLY (linearly in log
depth) onto [min_depth, max_depth]: disp 0.01 -> max_depth, disp 1 -> min_depth.

Why log depth rather than the release's linear inverse depth: with [0.1, 100] m and inverse depth,
everything from 3 m to 100 m falls inside the first two of the 32 bins, so a driving scene is
expressed by the balance of two logits and its depth gradient grows with depth squared. In log
depth each bin spans the same ratio of depth (about 25 %) over the whole range, which trained to a
much lower error in the same steps here. "Disparity" stays a normalised nearness: larger = nearer.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unified_perception.contract import DEFAULT_DEPTH_RANGE_M
from unified_perception.train.heads.layers import conv_elu, upsample_by

DISP_BINS = 32
DISP_RANGE = (0.01, 1.0)


def disparity_to_depth(disp: Tensor, min_depth_m: float, max_depth_m: float) -> Tensor:
    """Disparity in [0.01, 1] -> depth in [min_depth_m, max_depth_m] (m), linear in log depth."""
    lo, hi = DISP_RANGE
    fraction = ((disp - lo) / (hi - lo)).clamp(0.0, 1.0)
    log_depth = math.log(max_depth_m) + (math.log(min_depth_m) - math.log(max_depth_m)) * fraction
    return torch.exp(log_depth).clamp(min_depth_m, max_depth_m)


def depth_to_disparity(depth_m: Tensor, min_depth_m: float, max_depth_m: float) -> Tensor:
    """Inverse of :func:`disparity_to_depth`: depth (m) -> disparity in [0.01, 1]."""
    lo, hi = DISP_RANGE
    depth = depth_m.clamp(min_depth_m, max_depth_m)
    fraction = (torch.log(depth) - math.log(max_depth_m)) / (math.log(min_depth_m) - math.log(max_depth_m))
    return lo + (hi - lo) * fraction


class AttentionGate(nn.Module):
    """Additive attention gate: weights a skip by sigmoid(psi(relu(W_g g + W_x x)))."""

    def __init__(self, channels: int, inner: int) -> None:
        super().__init__()
        self.gate = nn.Conv2d(channels, inner, 1)
        self.skip = nn.Conv2d(channels, inner, 1)
        self.psi = nn.Conv2d(inner, 1, 1)

    def forward(self, coarse: Tensor, skip: Tensor) -> Tensor:
        attention = torch.sigmoid(self.psi(F.relu(self.gate(coarse) + self.skip(skip))))
        return skip * attention


class SoftBinDisparity(nn.Module):
    """conv3x3 -> 32 logits per pixel -> softmax -> expected bin value: ``[N, 1, h, w]`` in [0.01, 1]."""

    def __init__(self, cin: int, bins: int = DISP_BINS) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, bins, 3, padding=1)
        self.register_buffer("bin_values", torch.linspace(*DISP_RANGE, bins).reshape(1, bins, 1, 1),
                             persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        prob = torch.softmax(self.conv(x), dim=1)
        return (prob * self.bin_values).sum(dim=1, keepdim=True)


class DepthOutput(NamedTuple):
    """Disparities finest first: H, H/2, H/4, H/8 ``[N, 1, h, w]`` (only H in inference) and depth."""

    disparities: tuple[Tensor, ...]
    depth_m: Tensor                 # [N, 1, H, W] float32, m


class DepthDecoder(nn.Module):
    """Features at strides 4..32 -> multi-scale disparity and metric depth at the input size."""

    def __init__(self, in_channels: tuple[int, ...], width: int = 256,
                 fine_widths: tuple[int, int] = (64, 32),
                 depth_range_m: tuple[float, float] = DEFAULT_DEPTH_RANGE_M) -> None:
        super().__init__()
        self.depth_range_m = depth_range_m
        self.project = nn.ModuleList(nn.Conv2d(c, width, 1) for c in in_channels)
        self.gates = nn.ModuleList(AttentionGate(width, max(width // 4, 8)) for _ in in_channels[:-1])
        self.fuse = nn.ModuleList(nn.Sequential(conv_elu(2 * width, width), conv_elu(width, width))
                                  for _ in in_channels[:-1])
        w2, w1 = fine_widths
        self.up2 = conv_elu(width, w2)
        self.up1 = conv_elu(w2, w1)
        self.disp8, self.disp4 = SoftBinDisparity(width), SoftBinDisparity(width)
        self.disp2, self.disp1 = SoftBinDisparity(w2), SoftBinDisparity(w1)

    def forward(self, features: list[Tensor], all_scales: bool = True) -> DepthOutput:
        """``features`` at strides (4, 8, 16, 32) -> disparities and depth at the input size
        (stride 1). Every upsampling is a factor of 2 (a constant, for a static export)."""
        proj = [p(f) for p, f in zip(self.project, features)]
        x = proj[-1]
        fused: list[Tensor] = []
        for level in (2, 1, 0):                      # strides 16, 8, 4
            skip = proj[level]
            up = upsample_by(x, 2)
            x = self.fuse[level](torch.cat([up, self.gates[level](up, skip)], dim=1))
            fused.append(x)
        x2 = self.up2(upsample_by(fused[-1], 2))                 # stride 2
        x1 = self.up1(upsample_by(x2, 2))                        # stride 1
        disp1 = self.disp1(x1)
        if all_scales:
            disparities = (disp1, self.disp2(x2), self.disp4(fused[2]), self.disp8(fused[1]))
        else:
            disparities = (disp1,)
        return DepthOutput(disparities, disparity_to_depth(disp1, *self.depth_range_m))
