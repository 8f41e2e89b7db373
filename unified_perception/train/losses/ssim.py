"""Structural similarity (Wang et al., 2004) per pixel, as the self-supervised depth losses use it.

A 3x3 window (mean pooling) over reflection-padded images and the constants of monodepth2
(Godard et al., 2019): ``C1 = 0.01^2``, ``C2 = 0.03^2`` for images in [0, 1].
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

C1 = 0.01 ** 2
C2 = 0.03 ** 2


def ssim(x: Tensor, y: Tensor) -> Tensor:
    """Per-pixel SSIM of ``x`` and ``y`` ``[N, C, H, W]`` in [0, 1] -> ``[N, C, H, W]`` (1 = equal
    patches; the 3x3 window at each pixel, the image border reflected)."""
    x = F.pad(x, (1, 1, 1, 1), mode="reflect")
    y = F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x, mu_y = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    sigma_x = F.avg_pool2d(x * x, 3, 1) - mu_x * mu_x
    sigma_y = F.avg_pool2d(y * y, 3, 1) - mu_y * mu_y
    sigma_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    numerator = (2.0 * mu_x * mu_y + C1) * (2.0 * sigma_xy + C2)
    denominator = (mu_x * mu_x + mu_y * mu_y + C1) * (sigma_x + sigma_y + C2)
    return numerator / denominator
