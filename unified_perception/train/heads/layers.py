"""Small building blocks shared by the heads."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1,
                 dilation: int = 1) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + ReLU, 'same' padding."""
    pad = dilation * (kernel // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


ACTIVATIONS = ("elu", "relu")
"""Activations of :func:`conv_act`."""


def conv_act(cin: int, cout: int, kernel: int = 3, activation: str = "elu") -> nn.Sequential:
    """Conv + ELU (the self-supervised depth decoders' choice: no batch statistics) or + ReLU
    (which ONNX Runtime fuses into the convolution, blocked layout and INT8 included). The
    parameters (``0.weight``, ``0.bias``) are the same either way."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    act = nn.ELU(inplace=True) if activation == "elu" else nn.ReLU(inplace=True)
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2), act)


def separable_conv_bn_relu(cin: int, cout: int, kernel: int = 5) -> nn.Sequential:
    """Depthwise kxk + pointwise 1x1, each with BatchNorm + ReLU (Panoptic-DeepLab's fusion conv)."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, kernel, padding=kernel // 2, groups=cin, bias=False),
        nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def upsample_to(x: Tensor, size: tuple[int, int] | list[int]) -> Tensor:
    """Bilinear resize to ``size`` (H, W), align_corners=False."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def upsample_by(x: Tensor, factor: int | tuple[int, int]) -> Tensor:
    """Bilinear upsampling ``[N, C, h, w] -> [N, C, f_h * h, f_w * w]`` by integer factors,
    align_corners=False.

    For integer factors this is exactly :func:`upsample_to` the multiplied size (both use the
    coordinate scale ``1 / f``), but the export carries the factor as a constant ``Resize`` scale
    instead of a size computed from the input's runtime shape, so every output dim stays static.
    """
    fh, fw = (factor, factor) if isinstance(factor, int) else factor
    return F.interpolate(x, scale_factor=(float(fh), float(fw)), mode="bilinear",
                         align_corners=False)


class ResidualBlock(nn.Module):
    """Two 3x3 conv-BN layers with a shortcut (1x1 projection when shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                       nn.BatchNorm2d(cout)))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))
