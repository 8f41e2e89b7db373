"""Motion decoder (Dynamo-Depth style, as in the paper's release): a coarse-to-fine field seeded by
the detached ego-motion.

A 1x1 conv of ``100 * pose_vector`` gives a 1x1 seed field. Levels, coarse to fine: the pair
features ``[f_prev, f_cur]`` at strides 32, 16, 8, 4, then stride 2 (the stride-4 pair upsampled),
then the normalised RGB pair at full size. At each level::

    a = relu(conv3x3(cat[up(field), features]));  b = relu(conv3x3(a))
    field = conv1x1(cat[a, b]) + up(field)

Two instances: ``MotionDecoder(out_channels=3)`` gives the independent 3D flow (x FLOW_SCALE, m, optical
frame of t) and ``MotionDecoder(out_channels=1, sigmoid=True)`` the motion probability.
"""

from __future__ import annotations

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


class MotionDecoder(nn.Module):
    """Pair features (strides 4..32), the image pair and the ego pose -> a dense field ``[N, C, H, W]``."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int,
                 widths: tuple[int, ...] = (256, 128, 64, 32, 16, 16), sigmoid: bool = False,
                 scale: float = FLOW_SCALE) -> None:
        super().__init__()
        self.sigmoid, self.scale = sigmoid, scale
        self.seed = nn.Conv2d(6, out_channels, 1)
        # Level inputs: pairs at strides 32, 16, 8, 4, the stride-4 pair again at stride 2, RGB pair.
        pair = [2 * c for c in in_channels[::-1]]
        level_inputs = pair + [pair[-1], 6]
        self.levels = nn.ModuleList(_Level(cin, width, out_channels)
                                    for cin, width in zip(level_inputs, widths))

    def forward(self, prev_features: list[Tensor], cur_features: list[Tensor],
                prev_image: Tensor, cur_image: Tensor, pose_vector: Tensor,
                image_size: tuple[int, int]) -> Tensor:
        """``pose_vector`` ``[N, 6]`` is detached here; images are normalised ``[N, 3, H, W]`` with
        ``image_size`` = (H, W) as ints, multiples of 32 (the resize factors are constants)."""
        seed = self.seed(EGO_SEED_SCALE * pose_vector.detach()[:, :, None, None])     # [N, C, 1, 1]
        pairs = [torch.cat([p, c], dim=1) for p, c in zip(prev_features[::-1], cur_features[::-1])]
        pairs.append(upsample_by(pairs[-1], 2))                                       # stride 2
        pairs.append(torch.cat([prev_image, cur_image], dim=1))
        h, w = image_size
        factors = [(h // 32, w // 32)] + [(2, 2)] * (len(pairs) - 1)   # 1x1 seed -> stride 32 -> ..
        field = seed
        for level, features, factor in zip(self.levels, pairs, factors):
            field = level(field, features, factor)
        return torch.sigmoid(field) if self.sigmoid else field * self.scale
