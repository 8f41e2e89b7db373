"""Images for people to look at: class colours, depth and motion overlays. ``[h, w, 3] uint8`` RGB out.

Lookup tables and cv2 colour maps only; no loops over pixels.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def semantic_palette(class_colors: Sequence[Sequence[int]]) -> np.ndarray:
    """``[256, 3] uint8`` lookup table: row ``i`` is class ``i``'s colour, unknown ids are black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    colors = np.asarray(class_colors, dtype=np.int64).reshape(-1, 3)[:256]
    lut[:len(colors)] = np.clip(colors, 0, 255)
    return lut


def colorize_semantic(semantic: np.ndarray, class_colors: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    """Class ids ``[h, w] uint8`` -> ``[h, w, 3] uint8`` RGB using the metadata's class colours.

    ``class_colors`` is the list of ``(r, g, b)`` (``ModelMetadata.class_colors``) or a
    :func:`semantic_palette` table (pass the table when colouring every frame).
    """
    lut = class_colors if isinstance(class_colors, np.ndarray) and class_colors.shape == (256, 3) \
        else semantic_palette(class_colors)
    # np.take along rows: the same lookup as lut[ids], about 4x faster than fancy indexing
    return np.take(lut, np.asarray(semantic).astype(np.uint8, copy=False), axis=0)


def colorize_depth(depth_m: np.ndarray, min_m: float, max_m: float,
                   colormap: int = cv2.COLORMAP_TURBO) -> np.ndarray:
    """Depth ``[h, w] float32`` (m) -> ``[h, w, 3] uint8`` RGB; near is warm, far is cold.

    Inverse depth is mapped linearly between ``1/max_m`` and ``1/min_m`` (it spreads the near range
    where driving happens); pixels that are not finite or not positive are black.
    """
    if not 0.0 < min_m < max_m:
        raise ValueError(f"depth colour range needs 0 < min_m < max_m, got {min_m}, {max_m}")
    depth = np.asarray(depth_m, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0.0)
    inv = np.divide(1.0, depth, out=np.zeros_like(depth), where=valid)
    lo, hi = 1.0 / max_m, 1.0 / min_m
    scaled = np.clip((inv - lo) / (hi - lo), 0.0, 1.0)
    rgb = cv2.cvtColor(cv2.applyColorMap((scaled * 255.0).astype(np.uint8), colormap), cv2.COLOR_BGR2RGB)
    rgb[~valid] = 0
    return rgb


def overlay_motion(image_rgb: np.ndarray, motion_prob: np.ndarray, threshold: float = 0.5,
                   color_rgb: tuple[int, int, int] = (255, 0, 255), alpha: float = 0.6) -> np.ndarray:
    """Tint the pixels of ``image_rgb`` ``[h, w, 3] uint8`` whose ``motion_prob`` ``[h, w]`` exceeds
    ``threshold``: ``(1 - alpha) * image + alpha * color``. Returns a new ``[h, w, 3] uint8``."""
    if image_rgb.shape[:2] != motion_prob.shape:
        raise ValueError(f"image {list(image_rgb.shape[:2])} and motion {list(motion_prob.shape)} "
                         f"sizes differ; resize the image to the model size first")
    out = image_rgb.copy()
    moving = motion_prob > threshold
    tint = np.asarray(color_rgb, dtype=np.float32)
    out[moving] = ((1.0 - alpha) * image_rgb[moving].astype(np.float32) + alpha * tint).astype(np.uint8)
    return out


def colorize_instances(instances: np.ndarray) -> np.ndarray:
    """Instance ids ``[h, w]`` -> ``[h, w, 3] uint8``: a fixed pseudo-random colour per id, 0 black."""
    ids = np.asarray(instances).astype(np.uint32)
    hashed = (ids * np.uint32(2654435761)) >> np.uint32(8)
    rgb = np.stack([(hashed >> np.uint32(s)) & np.uint32(0xFF) for s in (0, 8, 16)], axis=-1)
    rgb = (rgb | np.uint32(0x40)).astype(np.uint8)
    rgb[ids == 0] = 0
    return rgb
