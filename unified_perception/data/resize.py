"""Resizing and cropping a :class:`Sample` with its intrinsics kept consistent.

Convention: pixel centres sit at integer coordinates and an image of width ``W`` spans
``[-0.5, W - 0.5]``. Resizing by ``s = W' / W`` maps ``u -> (u + 0.5) * s - 0.5`` (what
``cv2.resize`` does), so ``fx' = s fx`` and ``cx' = (cx + 0.5) s - 0.5``; likewise for y.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from unified_perception.data.sample import PER_PIXEL_FIELDS, Sample
from unified_perception.runtime.preprocess import (  # one convention for train and car
    resize_to_model, scale_intrinsics)

__all__ = ["crop_intrinsics", "crop_sample", "resize_images", "resize_nearest", "resize_sample",
           "scale_intrinsics", "scale_matrix"]


def scale_matrix(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> np.ndarray:
    """``[3, 3] float64`` map from pixel coordinates of ``src_hw`` to those of ``dst_hw``."""
    sy = dst_hw[0] / src_hw[0]
    sx = dst_hw[1] / src_hw[1]
    return np.array([[sx, 0.0, 0.5 * sx - 0.5],
                     [0.0, sy, 0.5 * sy - 0.5],
                     [0.0, 0.0, 1.0]])


def crop_intrinsics(K: np.ndarray, top: int, left: int) -> np.ndarray:
    """Intrinsics after cutting ``top`` rows and ``left`` columns off the image."""
    out = np.array(K, dtype=np.float64, copy=True)
    out[0, 2] -= left
    out[1, 2] -= top
    return out


def resize_images(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``[T, H, W, 3] uint8`` -> ``[T, h, w, 3] uint8`` exactly as the car resizes camera frames
    (:func:`unified_perception.runtime.preprocess.resize_to_model`)."""
    if images.shape[1:3] == tuple(size):
        return images
    return np.stack([resize_to_model(img, tuple(size)) for img in images])


def resize_nearest(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label / depth / flow map ``[H, W]`` or ``[H, W, C]``.

    Works for any dtype (bool, int32, float32...) by gathering source pixels, so values are never
    mixed: labels stay labels, sparse depth stays exact where it is kept.
    """
    height, width = size
    src_h, src_w = array.shape[:2]
    if (src_h, src_w) == (height, width):
        return array
    rows = np.minimum(((np.arange(height) + 0.5) * (src_h / height)).astype(np.int64), src_h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * (src_w / width)).astype(np.int64), src_w - 1)
    return array[rows[:, None], cols[None, :]]


def resize_sample(sample: Sample, size: tuple[int, int] | None) -> Sample:
    """The sample at ``size = (H, W)`` (None: unchanged). K is scaled, labels resized nearest."""
    if size is None or sample.size == tuple(size):
        return sample
    changes = {name: resize_nearest(getattr(sample, name), size)
               for name in PER_PIXEL_FIELDS if getattr(sample, name) is not None}
    return replace(sample, images=resize_images(sample.images, size),
                   K=scale_intrinsics(sample.K, sample.size, size), **changes)


def crop_sample(sample: Sample, top: int, bottom: int, left: int, right: int) -> Sample:
    """Keep rows ``[top, bottom)`` and columns ``[left, right)`` of every image and map."""
    changes = {name: getattr(sample, name)[top:bottom, left:right]
               for name in PER_PIXEL_FIELDS if getattr(sample, name) is not None}
    return replace(sample, images=sample.images[:, top:bottom, left:right],
                   K=crop_intrinsics(sample.K, top, left), **changes)
