"""Panoptic-DeepLab-style segmentation heads (Cheng et al., 2020): semantic logits, instance
center heatmap and center offsets, from two light decoders over the shared encoder's features.

Each decoder: ASPP on the stride-32 features (dilations 3/6/9: Panoptic-DeepLab's 6/12/18 at output
stride 16, halved for stride 32, plus an image-pooling branch), then upsampling to strides 16, 8, 4
with a projected skip concatenated at each and a 5x5 depthwise-separable fusion conv. Predictions
are made at stride 4 and resized bilinearly to the input size. Offsets are in input pixels
(``[dy, dx]``, pointing from a pixel to its instance center); the heatmap regresses a Gaussian of
the instance centers (no sigmoid), as in Panoptic-DeepLab.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unified_perception.contract import NUM_CLASSES
from unified_perception.train.heads.layers import (conv_bn_relu, separable_conv_bn_relu,
                                                   upsample_by)

PREDICTION_STRIDE = 4
"""The decoders predict at stride 4; the predictions are upsampled by this factor to the input."""


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3 and an image-pooling branch."""

    def __init__(self, cin: int, cout: int, rates: tuple[int, ...] = (3, 6, 9)) -> None:
        super().__init__()
        self.branches = nn.ModuleList([conv_bn_relu(cin, cout, 1)] +
                                      [conv_bn_relu(cin, cout, 3, dilation=r) for r in rates])
        self.pool = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.ReLU(inplace=True))
        self.project = conv_bn_relu(cout * (len(rates) + 2), cout, 1)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """``x`` ``[N, C, h, w]`` with ``size`` = (h, w) as ints. The image-pooling branch is a
        global average pool, and its ``[N, C, 1, 1]`` result is spread over ``size`` by nearest
        upsampling with the constant factors (h, w): exact, with static exported shapes, and both
        ops run in ONNX Runtime's blocked (NCHWc) layout, so the concatenation with the other
        branches does too (a broadcasting add kept it, and the four branch outputs, in plain
        layout with a reorder each)."""
        h, w = size
        pooled = F.interpolate(self.pool(F.adaptive_avg_pool2d(x, 1)), scale_factor=(float(h), float(w)),
                               mode="nearest")
        branches = [self.branches[0](x)] + [_dilated_branch(b, x, size) for b in self.branches[1:]]
        return self.project(torch.cat(branches + [pooled], dim=1))


def _dilated_branch(branch: nn.Sequential, x: Tensor, size: tuple[int, int]) -> Tensor:
    """``branch`` (dilated 3x3 conv, BN, ReLU) of ``x`` ``[N, C, h, w]``, ``size`` = (h, w).

    A tap ``r`` rows away from the centre reads only the zero padding when ``r >= h``: on a small
    stride-32 map (3 rows at 96x320) the dilated kernel's outer rows (columns when ``r >= w``) never
    touch the map. The convolution then runs with only the taps that do, and no padding on that
    side: the same result, with a third of the weights read (the ASPP's 3x3 branches read them
    from memory for a handful of pixels)."""
    conv = branch[0]
    r = conv.dilation[0]
    outside = (r >= size[0], r >= size[1])      # the outer taps read only padding along (rows, cols)
    rows, cols = (slice(1, 2) if o else slice(None) for o in outside)
    y = F.conv2d(x, conv.weight[:, :, rows, cols], conv.bias,
                 padding=tuple(0 if o else r for o in outside), dilation=r)
    return branch[2](branch[1](y))


class PanopticDecoder(nn.Module):
    """ASPP at stride 32, then fuse projected skips at strides 16, 8, 4 -> ``[N, width, H/4, W/4]``."""

    def __init__(self, in_channels: tuple[int, ...], width: int,
                 skip_widths: tuple[int, int, int]) -> None:
        super().__init__()
        self.aspp = ASPP(in_channels[-1], width)
        self.skips = nn.ModuleList(conv_bn_relu(c, s, 1)
                                   for c, s in zip(in_channels[:3][::-1], skip_widths))
        self.fuse = nn.ModuleList(separable_conv_bn_relu(width + s, width) for s in skip_widths)

    def forward(self, features: list[Tensor], coarse_size: tuple[int, int]) -> Tensor:
        """``features`` at strides 4..32; ``coarse_size`` (H/32, W/32) of the stride-32 map."""
        x = self.aspp(features[-1], coarse_size)
        for skip_conv, fuse, feat in zip(self.skips, self.fuse, features[:3][::-1]):
            skip = skip_conv(feat)
            x = fuse(torch.cat([upsample_by(x, 2), skip], dim=1))
        return x


class PredictionHead(nn.Module):
    """5x5 depthwise-separable conv then a 1x1 conv to ``cout`` channels."""

    def __init__(self, cin: int, inner: int, cout: int) -> None:
        super().__init__()
        self.body = separable_conv_bn_relu(cin, inner)
        self.out = nn.Conv2d(inner, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x))


class PanopticHeadOutput(NamedTuple):
    """Dense predictions at the input size."""

    semantic_logits: Tensor     # [N, C, H, W] float32
    semantic_logits_s4: Tensor  # [N, C, H/4, W/4] float32, the same before upsampling
    center_heatmap_s4: Tensor   # [N, 1, H/4, W/4] float32 (center extraction runs at stride 4)
    center_heatmap: Tensor      # [N, 1, H, W] float32
    center_offsets: Tensor      # [N, 2, H, W] float32, (dy, dx) in input pixels
    center_offsets_s4: Tensor   # [N, 2, H/4, W/4] float32, the same before upsampling


class PanopticHead(nn.Module):
    """Semantic decoder + instance decoder -> semantic logits, center heatmap, center offsets.
    ``shared_decoder``: one decoder (the semantic one) feeds all three prediction heads (the car's
    choice: the decoders are a third of the head's time)."""

    def __init__(self, in_channels: tuple[int, ...], num_classes: int = NUM_CLASSES,
                 semantic_width: int = 256, instance_width: int = 128,
                 semantic_skips: tuple[int, int, int] = (128, 64, 32),
                 instance_skips: tuple[int, int, int] = (64, 32, 16),
                 instance_head_width: int = 32, shared_decoder: bool = False) -> None:
        super().__init__()
        self.semantic_decoder = PanopticDecoder(in_channels, semantic_width, semantic_skips)
        self.instance_decoder = (None if shared_decoder else
                                 PanopticDecoder(in_channels, instance_width, instance_skips))
        instance_in = semantic_width if shared_decoder else instance_width
        self.semantic_head = PredictionHead(semantic_width, semantic_width, num_classes)
        self.center_head = PredictionHead(instance_in, instance_head_width, 1)
        self.offset_head = PredictionHead(instance_in, instance_head_width, 2)

    def init_output_layers(self, std: float = 1e-3) -> None:
        """Start the centre heatmap and offsets near zero (call after the generic head init): a
        heatmap of O(1) everywhere costs an MSE of O(1) per pixel, which at Panoptic-DeepLab's
        weight of 200 would dominate the first steps' gradient (and its clipping) for every task."""
        for head in (self.center_head, self.offset_head):
            nn.init.normal_(head.out.weight, std=std)
            nn.init.zeros_(head.out.bias)

    def forward(self, features: list[Tensor], image_size: tuple[int, int]) -> PanopticHeadOutput:
        """``features`` at strides 4..32 of an input of ``image_size`` (H, W), multiples of 32."""
        coarse = (image_size[0] // 32, image_size[1] // 32)
        shared = self.semantic_decoder(features, coarse)
        sem = self.semantic_head(shared)
        inst = shared if self.instance_decoder is None else self.instance_decoder(features, coarse)
        center_s4 = self.center_head(inst)
        offsets_s4 = self.offset_head(inst)
        return PanopticHeadOutput(
            semantic_logits=upsample_by(sem, PREDICTION_STRIDE),
            semantic_logits_s4=sem,
            center_heatmap_s4=center_s4,
            center_heatmap=upsample_by(center_s4, PREDICTION_STRIDE),
            center_offsets=upsample_by(offsets_s4, PREDICTION_STRIDE),
            center_offsets_s4=offsets_s4,
        )
