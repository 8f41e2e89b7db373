"""Input normalisation, part of the model graph so the exported model takes camera bytes."""

from __future__ import annotations

import torch
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageNormalization(nn.Module):
    """uint8 RGB ``[N, H, W, 3]`` -> ImageNet-normalised float ``[N, 3, H, W]`` (inside the graph)."""

    def __init__(self) -> None:
        super().__init__()
        mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def forward(self, image: Tensor) -> Tensor:
        """Accepts uint8 NHWC (0..255) or float NCHW in [0, 1]."""
        if image.dtype == torch.uint8:
            image = image.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        return (image - self.mean) / self.std
