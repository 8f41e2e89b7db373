"""Edge-aware smoothness (Godard et al., 2017; monodepth2): a field's first differences, down-weighted
where the image has an edge, so depth and motion may change where the colours do."""

from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor

_EPS = 1e-7


def edge_aware_smoothness(field: Tensor, image: Tensor) -> Tensor:
    """Mean of ``|d field| * exp(-|d image|)`` over horizontal and vertical neighbours -> scalar.

    ``field`` ``[N, C, H, W]`` (any units; the channels' absolute differences are summed, the L1 norm
    of a vector field's change); ``image`` ``[N, 3, H, W]`` in [0, 1] at the field's size (its
    channel-mean absolute difference is the edge strength). 0 for a constant field; a direction
    with a single row or column (a coarse scale of a small input) adds 0.
    """
    dfield_x = (field[..., :, :-1] - field[..., :, 1:]).abs().sum(dim=1, keepdim=True)
    dfield_y = (field[..., :-1, :] - field[..., 1:, :]).abs().sum(dim=1, keepdim=True)
    dimage_x = (image[..., :, :-1] - image[..., :, 1:]).abs().mean(dim=1, keepdim=True)
    dimage_y = (image[..., :-1, :] - image[..., 1:, :]).abs().mean(dim=1, keepdim=True)
    return _mean_or_zero(dfield_x * (-dimage_x).exp()) + _mean_or_zero(dfield_y * (-dimage_y).exp())


def _mean_or_zero(values: Tensor) -> Tensor:
    """Mean of ``values``; 0 (not nan) when it has no elements."""
    return values.sum() / max(values.numel(), 1)


def disparity_smoothness(disparity: Tensor, image: Tensor) -> Tensor:
    """Edge-aware smoothness of ``disparity`` ``[N, 1, h, w]`` divided by its per-image mean (so the
    term cannot shrink by shrinking the scene's scale); ``image`` ``[N, 3, H, W]`` in [0, 1] is
    resized to ``h x w`` by area averaging."""
    if tuple(image.shape[-2:]) != tuple(disparity.shape[-2:]):
        image = F.interpolate(image, size=disparity.shape[-2:], mode="area")
    normalized = disparity / (disparity.mean(dim=(2, 3), keepdim=True) + _EPS)
    return edge_aware_smoothness(normalized, image)


def multi_scale_disparity_smoothness(disparities: Sequence[Tensor], image: Tensor,
                                     scales: int = 4) -> Tensor:
    """monodepth2's weighting over scales: the mean over the first ``scales`` disparities (finest
    first) of ``disparity_smoothness / 2^scale`` -> scalar."""
    used = list(disparities[:scales])
    return sum(disparity_smoothness(d, image) / 2 ** s for s, d in enumerate(used)) / len(used)
