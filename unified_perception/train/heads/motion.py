"""Motion decoder (Dynamo-Depth style, as in the paper's release): a coarse-to-fine field seeded by
the detached ego-motion.

A 1x1 conv of ``100 * pose_vector`` gives a 1x1 seed field. Levels, coarse to fine: the pair
features ``[f_prev, f_cur]`` at strides 32, 16, 8, 4, then stride 2 (the stride-4 pair upsampled),
then the normalised RGB pair at full size. At each level::

    a = relu(conv3x3(cat[up(field), features]));  b = relu(conv3x3(a))
    field = conv1x1(cat[a, b]) + up(field)

With ``output_stride`` 4 (the car's choice) the levels stop at stride 4 and the field is upsampled
bilinearly by 4 to the input size inside the graph: the stride-2 and full-resolution levels are
convolutions of a few channels over many pixels, memory-bound on a CPU, for a mask of object-sized
blobs and a flow that is smooth inside each object.

:class:`MotionHead` gives the motion probability and the independent 3D flow (x FLOW_SCALE, m,
optical frame of t), either from two decoders (the release: ``MotionDecoder(out_channels=1)`` for
the mask, ``MotionDecoder(out_channels=3)`` for the flow) or from one shared decoder with four
output channels (the car's choice: half the work, and the flow learns where the mask looks).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unified_perception.train.heads.layers import upsample_by

FLOW_SCALE = 0.05
"""Metres of independent flow per unit of the decoder's raw output. The release uses 0.005; with
objects moving 0.5-2 m between frames that needs raw outputs of 100-400, which 600 steps of AdamW
never reached here (the predicted flow stayed at zero). 0.05 puts them at 10-40."""
EGO_SEED_SCALE = 100.0


class _Level(nn.Module):
    def __init__(self, cin: int, width: int, cout: int, pair_width: int = 0) -> None:
        """``pair_width`` > 0 and below ``cin``: the features are first squeezed to that many
        channels by a 1x1 convolution + ReLU (see ``MotionDecoder``)."""
        super().__init__()
        squeeze = 0 < pair_width < cin
        self.squeeze = (nn.Sequential(nn.Conv2d(cin, pair_width, 1), nn.ReLU(inplace=True))
                        if squeeze else None)
        cin = pair_width if squeeze else cin
        self.conv_a = nn.Conv2d(cin + cout, width, 3, padding=1)
        self.conv_b = nn.Conv2d(width, width, 3, padding=1)
        self.out = nn.Conv2d(2 * width, cout, 1)
        self.fields = cout        # channels of the field, the first of conv_a's input

    def forward(self, field: Tensor, features: Tensor, factor: tuple[int, int]) -> Tensor:
        """``field`` upsampled by ``factor`` must meet ``features`` in size."""
        up = upsample_by(field, factor)
        if self.squeeze is not None:
            features = self.squeeze(features)
        # conv_a of cat[up, features], computed as the sum of its two parts (the same maths and
        # parameters): the features' part then has a channel count that ONNX Runtime's blocked
        # (NCHWc) convolutions take; with the 1 or 3 field channels added, every level ran as a
        # plain convolution between layout reorders (2 ms of the car heads' 18 at 96x320). The
        # slices are constants, folded into two weights by the export.
        weight, f = self.conv_a.weight, self.fields
        a = F.relu(F.conv2d(features, weight[:, f:], self.conv_a.bias, padding=1)
                   + F.conv2d(up, weight[:, :f], padding=1))
        b = F.relu(self.conv_b(a))
        return self.out(torch.cat([a, b], dim=1)) + up


OUTPUT_STRIDES = (1, 4)


class MotionDecoder(nn.Module):
    """Pair features (strides 4..32), the image pair and the ego pose -> a raw dense field
    ``[N, C, H, W]`` (no activation, no scale)."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int,
                 widths: tuple[int, ...] = (256, 128, 64, 32, 16, 16),
                 output_stride: int = 1, pair_width: int = 0) -> None:
        """``pair_width`` > 0: pairs of more channels are squeezed to that many by a 1x1
        convolution before a level's 3x3 ones. At the coarse strides the pairs are wide (1024
        channels at stride 32 for a resnet18) over few pixels, so a level's 3x3 weights (9.4 MB at
        stride 32) cost more to read from memory than they take to compute; the squeeze reads
        1 MB."""
        super().__init__()
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"motion output stride must be one of {OUTPUT_STRIDES}, got {output_stride}")
        self.output_stride = output_stride
        self.seed = nn.Conv2d(6, out_channels, 1)
        # Level inputs: pairs at strides 32, 16, 8, 4, the stride-4 pair again at stride 2, RGB pair.
        pair = [2 * c for c in in_channels[::-1]]
        level_inputs = (pair + [pair[-1], 6])[:len(pair) if output_stride == 4 else None]
        self.levels = nn.ModuleList(_Level(cin, width, out_channels, pair_width)
                                    for cin, width in zip(level_inputs, widths))

    def forward(self, prev_features: list[Tensor], cur_features: list[Tensor],
                prev_image: Tensor | None, cur_image: Tensor | None, pose_vector: Tensor,
                image_size: tuple[int, int]) -> Tensor:
        """``pose_vector`` ``[N, 6]`` is detached here; images are normalised ``[N, 3, H, W]`` (read
        only at output stride 1; None otherwise) with ``image_size`` = (H, W) as ints, multiples of
        32 (the resize factors are constants)."""
        seed = self.seed(EGO_SEED_SCALE * pose_vector.detach()[:, :, None, None])     # [N, C, 1, 1]
        pairs = [torch.cat([p, c], dim=1) for p, c in zip(prev_features[::-1], cur_features[::-1])]
        if self.output_stride == 1:
            pairs.append(upsample_by(pairs[-1], 2))                                   # stride 2
            pairs.append(torch.cat([prev_image, cur_image], dim=1))
        h, w = image_size
        factors = [(h // 32, w // 32)] + [(2, 2)] * (len(pairs) - 1)   # 1x1 seed -> stride 32 -> ..
        field = seed
        for level, features, factor in zip(self.levels, pairs, factors):
            field = level(field, features, factor)
        return upsample_by(field, self.output_stride) if self.output_stride > 1 else field


class MotionOutput(NamedTuple):
    """The pair's motion at the input size."""

    motion_prob: Tensor                    # [N, 1, H, W] in [0, 1]
    independent_flow_m: Tensor | None      # [N, 3, H, W] m, optical frame of t (None: no flow task)


class MotionHead(nn.Module):
    """Motion probability (and, with ``flow``, the independent 3D flow) of the pair (t-1, t)."""

    def __init__(self, in_channels: tuple[int, ...], flow: bool,
                 widths: tuple[int, ...] = (256, 128, 64, 32, 16, 16), output_stride: int = 1,
                 shared: bool = False, scale: float = FLOW_SCALE, pair_width: int = 0) -> None:
        super().__init__()
        self.scale, self.shared = scale, shared and flow
        self.uses_images = output_stride == 1     # only the full-resolution level reads the RGB pair
        if self.shared:       # flow xyz, mask logit
            self.decoder = MotionDecoder(in_channels, 4, widths, output_stride, pair_width)
        else:
            self.mask = MotionDecoder(in_channels, 1, widths, output_stride, pair_width)
            self.flow = (MotionDecoder(in_channels, 3, widths, output_stride, pair_width)
                         if flow else None)

    def forward(self, prev_features: list[Tensor], cur_features: list[Tensor],
                prev_image: Tensor | None, cur_image: Tensor | None, pose_vector: Tensor,
                image_size: tuple[int, int]) -> MotionOutput:
        """Arguments as :meth:`MotionDecoder.forward`."""
        args = (prev_features, cur_features, prev_image, cur_image, pose_vector, image_size)
        if self.shared:
            field = self.decoder(*args)
            return MotionOutput(torch.sigmoid(field[:, 3:4]), field[:, :3] * self.scale)
        flow = self.flow(*args) * self.scale if self.flow is not None else None
        return MotionOutput(torch.sigmoid(self.mask(*args)), flow)
