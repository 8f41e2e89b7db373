"""Panoptic-DeepLab instance targets from a panoptic label map: centre heatmap, centre offsets and
the thing mask (Cheng et al., "Panoptic-DeepLab", CVPR 2020, section 3.2).

Each THING instance (class in ``contract.THING_CLASS_IDS``, instance id > 0) has its centre at its
centre of mass ``(cy, cx)`` (px). The heatmap is the maximum over instances of a Gaussian
``exp(-d^2 / (2 sigma^2))`` centred on the pixel nearest the centre (so it peaks at exactly 1 there);
the offsets ``(dy, dx) = (cy - y, cx - x)`` point each thing pixel to its (unrounded) centre.
Stuff, crowd regions (thing class, instance 0) and unlabelled pixels get zero offsets and are
outside the thing mask.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from unified_perception.contract import PANOPTIC_LABEL_DIVISOR, THING_CLASS_IDS

REFERENCE_SIGMA_PX = 8.0
"""Panoptic-DeepLab's Gaussian sigma (px) at its Cityscapes training resolution."""
REFERENCE_SIZE = (1024, 2048)
"""``(H, W)`` at which :data:`REFERENCE_SIGMA_PX` applies."""
MIN_SIGMA_PX = 2.0
"""Smallest sigma (px): the network predicts the heatmap at stride 4, and a peak much narrower than
one stride-4 cell cannot be represented."""

_THING_LOOKUP = np.zeros(256, dtype=bool)
_THING_LOOKUP[list(THING_CLASS_IDS)] = True


class PanopticTargets(NamedTuple):
    """Targets of one image: ``heatmap [H, W] float32`` in [0, 1], ``offsets [2, H, W] float32``
    (dy, dx) px, ``thing_mask [H, W] bool``."""

    heatmap: np.ndarray
    offsets: np.ndarray
    thing_mask: np.ndarray


def center_sigma_px(height: int, width: int) -> float:
    """Heatmap sigma (px) for an ``height x width`` image.

    Scales Panoptic-DeepLab's 8 px at 1024 x 2048 with the image's linear size (the square root of
    the pixel-count ratio, so the Gaussian covers the same fraction of an object whatever the
    resolution), never below :data:`MIN_SIGMA_PX`: 1.9 -> 2 px at 192 x 640, 4 px at 512 x 1024.
    """
    ratio = (height * width) / (REFERENCE_SIZE[0] * REFERENCE_SIZE[1])
    return max(MIN_SIGMA_PX, REFERENCE_SIGMA_PX * math.sqrt(ratio))


def thing_instances(panoptic: np.ndarray) -> np.ndarray:
    """``[H, W] bool``: pixels of thing instances (thing class, instance id > 0) of a panoptic map
    (``class * 1000 + instance``)."""
    panoptic = np.asarray(panoptic, dtype=np.int64)
    classes = panoptic // PANOPTIC_LABEL_DIVISOR
    instance = panoptic % PANOPTIC_LABEL_DIVISOR
    return _THING_LOOKUP[np.clip(classes, 0, 255)] & (classes < 256) & (instance > 0)


def panoptic_targets(panoptic: np.ndarray, sigma_px: float | None = None) -> PanopticTargets:
    """Heatmap, offsets and thing mask of a panoptic map ``[H, W]`` (see the module docstring).

    Centres and offsets are computed for all instances at once (``np.unique`` + ``bincount``); the
    Gaussians are drawn per instance inside a ``+-3 sigma`` window. ``sigma_px`` defaults to
    :func:`center_sigma_px` of the image size.
    """
    panoptic = np.asarray(panoptic, dtype=np.int64)
    height, width = panoptic.shape
    sigma = center_sigma_px(height, width) if sigma_px is None else float(sigma_px)
    heatmap = np.zeros((height, width), dtype=np.float32)
    offsets = np.zeros((2, height, width), dtype=np.float32)
    things = thing_instances(panoptic)
    if not things.any():
        return PanopticTargets(heatmap, offsets, things)
    ys, xs = np.nonzero(things)
    _, label = np.unique(panoptic[ys, xs], return_inverse=True)
    counts = np.bincount(label).astype(np.float64)
    centre_y = np.bincount(label, weights=ys) / counts
    centre_x = np.bincount(label, weights=xs) / counts
    offsets[0, ys, xs] = centre_y[label] - ys
    offsets[1, ys, xs] = centre_x[label] - xs
    radius = int(math.ceil(3.0 * sigma))
    for cy, cx in zip(np.rint(centre_y).astype(int), np.rint(centre_x).astype(int)):
        top, bottom = max(cy - radius, 0), min(cy + radius + 1, height)
        left, right = max(cx - radius, 0), min(cx + radius + 1, width)
        dy = (np.arange(top, bottom) - cy)[:, None]
        dx = (np.arange(left, right) - cx)[None, :]
        gauss = np.exp(-(dy * dy + dx * dx) / (2.0 * sigma * sigma)).astype(np.float32)
        np.maximum(heatmap[top:bottom, left:right], gauss, out=heatmap[top:bottom, left:right])
    return PanopticTargets(heatmap, offsets, things)
