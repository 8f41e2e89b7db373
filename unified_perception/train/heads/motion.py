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
    def __init__(self, cin: int, width: int, cout: int) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(cin + cout, width, 3, padding=1)
        self.conv_b = nn.Conv2d(width, width, 3, padding=1)
        self.out = nn.Conv2d(2 * width, cout, 1)

    def forward(self, field: Tensor, features: Tensor, factor: tuple[int, int]) -> Tensor:
        """``field`` upsampled by ``factor`` must meet ``features`` in size."""
        up = upsample_by(field, factor)
        a = F.relu(self.conv_a(torch.cat([up, features], dim=1)))
        b = F.relu(self.conv_b(a))
        return self.out(torch.cat([a, b], dim=1)) + up


OUTPUT_STRIDES = (1, 4)


class MotionDecoder(nn.Module):
    """Pair features (strides 4..32), the image pair and the ego pose -> a raw dense field
    ``[N, C, H, W]`` (no activation, no scale)."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int,
                 widths: tuple[int, ...] = (256, 128, 64, 32, 16, 16),
                 output_stride: int = 1) -> None:
        super().__init__()
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"motion output stride must be one of {OUTPUT_STRIDES}, got {output_stride}")
        self.output_stride = output_stride
        self.seed = nn.Conv2d(6, out_channels, 1)
        # Level inputs: pairs at strides 32, 16, 8, 4, the stride-4 pair again at stride 2, RGB pair.
        pair = [2 * c for c in in_channels[::-1]]
        level_inputs = (pair + [pair[-1], 6])[:len(pair) if output_stride == 4 else None]
        self.levels = nn.ModuleList(_Level(cin, width, out_channels)
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
                 shared: bool = False, scale: float = FLOW_SCALE) -> None:
        super().__init__()
        self.scale, self.shared = scale, shared and flow
        self.uses_images = output_stride == 1     # only the full-resolution level reads the RGB pair
        if self.shared:
            self.decoder = MotionDecoder(in_channels, 4, widths, output_stride)   # flow xyz, mask logit
        else:
            self.mask = MotionDecoder(in_channels, 1, widths, output_stride)
            self.flow = MotionDecoder(in_channels, 3, widths, output_stride) if flow else None

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
