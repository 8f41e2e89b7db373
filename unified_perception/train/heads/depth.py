"""Depth decoder: top-down fusion with attention-gated skips, 4-scale soft-bin disparity, metric depth.

Following the paper's release: each stride's features are projected to ``width`` channels; the
coarse map is upsampled and fused with the next finer skip after an additive attention gate
(Oktay et al., 2018) has weighted the skip; disparity is predicted at four strides, finest
first. With ``output_stride`` 1 (the release) those are H, H/2, H/4, H/8; with ``output_stride``
2 or 4 (the car's choice: the fine levels are full-resolution convolutions of few channels,
memory-bound on a CPU, while depth varies smoothly inside objects) the decoder stops at that
stride, predicts there and at the three next coarser strides, and the finest prediction is
upsampled bilinearly to the input size inside the graph, so ``disparities[0]`` and ``depth_m``
are always at the input size. Each disparity head predicts a 32-bin distribution (softmax) over
``linspace(0.01, 1)`` and returns its expectation, so disparity lies in [0.01, 1]. Depth maps
that range GEOMETRICALLY (linearly in log depth) onto [min_depth, max_depth]: disp 0.01 ->
max_depth, disp 1 -> min_depth.

Why log depth rather than the release's linear inverse depth: with [0.1, 100] m and inverse depth,
everything from 3 m to 100 m falls inside the first two of the 32 bins, so a driving scene is
expressed by the balance of two logits and its depth gradient grows with depth squared. In log
depth each bin spans the same ratio of depth (about 25 %) over the whole range, which trained to a
much lower error in the same steps here. "Disparity" stays a normalised nearness: larger = nearer.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unified_perception.contract import DEFAULT_DEPTH_RANGE_M
from unified_perception.train.heads.layers import conv_act, upsample_by

DISP_BINS = 32
DISP_RANGE = (0.01, 1.0)
OUTPUT_STRIDES = (1, 2, 4)


def disparity_to_log_depth(disp: Tensor, min_depth_m: float, max_depth_m: float) -> Tensor:
    """Disparity in [0.01, 1] -> log depth (log m), an affine map (clamped to the range)."""
    lo, hi = DISP_RANGE
    fraction = ((disp - lo) / (hi - lo)).clamp(0.0, 1.0)
    return math.log(max_depth_m) + (math.log(min_depth_m) - math.log(max_depth_m)) * fraction


def disparity_to_depth(disp: Tensor, min_depth_m: float, max_depth_m: float) -> Tensor:
    """Disparity in [0.01, 1] -> depth in [min_depth_m, max_depth_m] (m), linear in log depth."""
    return torch.exp(disparity_to_log_depth(disp, min_depth_m, max_depth_m)).clamp(min_depth_m,
                                                                                 max_depth_m)


def depth_to_disparity(depth_m: Tensor, min_depth_m: float, max_depth_m: float) -> Tensor:
    """Inverse of :func:`disparity_to_depth`: depth (m) -> disparity in [0.01, 1]."""
    lo, hi = DISP_RANGE
    depth = depth_m.clamp(min_depth_m, max_depth_m)
    fraction = (torch.log(depth) - math.log(max_depth_m)) / (math.log(min_depth_m) - math.log(max_depth_m))
    return lo + (hi - lo) * fraction


class AttentionGate(nn.Module):
    """Additive attention gate: weights a skip by sigmoid(psi(relu(W_g g + W_x x)))."""

    def __init__(self, channels: int, inner: int, coarse_channels: int | None = None) -> None:
        """``channels``: of the skip (and of the coarse map unless ``coarse_channels``)."""
        super().__init__()
        self.gate = nn.Conv2d(coarse_channels or channels, inner, 1)
        self.skip = nn.Conv2d(channels, inner, 1)
        self.psi = nn.Conv2d(inner, 1, 1)
        self.register_buffer("per_channel", torch.ones(channels, 1, 1, 1), persistent=False)

    def forward(self, coarse: Tensor, skip: Tensor) -> Tensor:
        """The one-channel attention map is computed once per skip channel (``psi``'s single
        filter repeated): the product is then of two tensors of one shape, which ONNX Runtime
        runs in its blocked (NCHWc) layout, where a ``[N, 1, h, w]`` broadcast sent both operands
        through layout reorders. Same values; a few kFLOPs more."""
        hidden = F.relu(self.gate(coarse) + self.skip(skip))
        # [C, 1, 1, 1] ones times psi's [1, inner, 1, 1] filter: a product of constants, which the
        # export folds into one [C, inner, 1, 1] weight (an expand left its shape symbolic).
        attention = torch.sigmoid(F.conv2d(hidden, self.per_channel * self.psi.weight,
                                           self.per_channel[:, 0, 0, 0] * self.psi.bias))
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
    """Disparities finest first ``[N, 1, h, w]``, the first at the input size (the only one in
    inference), the others at the decoder's three next coarser strides; and depth."""

    disparities: tuple[Tensor, ...]
    depth_m: Tensor                 # [N, 1, H, W] float32, m


class DepthDecoder(nn.Module):
    """Features at strides 4..32 -> multi-scale disparity and metric depth at the input size."""

    def __init__(self, in_channels: tuple[int, ...], width: int = 256,
                 fine_widths: tuple[int, int] = (64, 32),
                 depth_range_m: tuple[float, float] = DEFAULT_DEPTH_RANGE_M,
                 output_stride: int = 1, activation: str = "elu", stride4_width: int = 0) -> None:
        """``activation``: of the fusion convolutions, ``elu`` (the release) or ``relu`` (what the
        depth refit stage converts a trained decoder to: train/depth_stage.py).
        ``stride4_width``: channels of the stride-4 level (its projection, fusion and prediction;
        0: ``width``). The stride-4 fusion is the decoder's largest cost (two 3x3 convolutions over
        16x more pixels than at stride 16), so a narrower one there saves most of its work."""
        super().__init__()
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"depth output stride must be one of {OUTPUT_STRIDES}, got {output_stride}")
        self.depth_range_m, self.output_stride = depth_range_m, output_stride
        level_widths = [stride4_width or width] + [width] * (len(in_channels) - 1)  # strides 4, 8, ..
        self.project = nn.ModuleList(nn.Conv2d(c, lw, 1) for c, lw in zip(in_channels, level_widths))
        self.gates = nn.ModuleList(AttentionGate(lw, max(lw // 4, 8), coarse)
                                   for lw, coarse in zip(level_widths[:-1], level_widths[1:]))
        conv = functools.partial(conv_act, activation=activation)
        self.fuse = nn.ModuleList(nn.Sequential(conv(coarse + lw, lw), conv(lw, lw))
                                  for lw, coarse in zip(level_widths[:-1], level_widths[1:]))
        w2, w1 = fine_widths
        w4 = level_widths[0]
        # Fine levels only down to the output stride; one soft-bin predictor per predicted stride.
        self.up2 = conv(w4, w2) if output_stride <= 2 else None
        self.up1 = conv(w2, w1) if output_stride == 1 else None
        widths = {1: w1, 2: w2, 4: w4, 8: width, 16: width, 32: width}
        self.strides = tuple(output_stride * 2 ** i for i in range(4))      # finest first
        self.predict = nn.ModuleList(SoftBinDisparity(widths[s]) for s in self.strides)

    def forward(self, features: list[Tensor], all_scales: bool = True) -> DepthOutput:
        """``features`` at strides (4, 8, 16, 32) -> disparities and depth at the input size
        (stride 1). Every upsampling is a constant factor (static export)."""
        proj = [p(f) for p, f in zip(self.project, features)]
        x = proj[-1]
        by_stride = {32: x}
        for level in (2, 1, 0):                      # strides 16, 8, 4
            skip = proj[level]
            up = upsample_by(x, 2)
            x = self.fuse[level](torch.cat([up, self.gates[level](up, skip)], dim=1))
            by_stride[4 * 2 ** level] = x
        if self.up2 is not None:
            by_stride[2] = self.up2(upsample_by(by_stride[4], 2))
        if self.up1 is not None:
            by_stride[1] = self.up1(upsample_by(by_stride[2], 2))
        used = self.predict if all_scales else self.predict[:1]
        disparities = [head(by_stride[s]) for head, s in zip(used, self.strides)]
        if self.output_stride == 1:
            return DepthOutput(tuple(disparities),
                               disparity_to_depth(disparities[0], *self.depth_range_m))
        # Log depth is affine in disparity (which stays inside its range), so upsampling commutes
        # with it: convert at the prediction stride, then upsample, and only exp and the clamp run
        # at the input size.
        log_depth = upsample_by(disparity_to_log_depth(disparities[0], *self.depth_range_m),
                                self.output_stride)
        disparities[0] = upsample_by(disparities[0], self.output_stride)
        depth = torch.exp(log_depth).clamp(*self.depth_range_m)
        return DepthOutput(tuple(disparities), depth)
