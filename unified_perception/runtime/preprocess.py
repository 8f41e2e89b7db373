"""Camera images and intrinsics to the model's input size.

Sizes are ``(height, width)`` in pixels throughout. Intrinsics follow the pinhole convention of
``sensor_msgs/CameraInfo``: pixel ``(u, v)`` is the centre of column ``u``, row ``v``.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def check_rgb(image_rgb: np.ndarray, what: str = "image") -> None:
    """Raise ``ValueError`` unless ``image_rgb`` is a non-empty ``[H, W, 3] uint8`` array."""
    if not isinstance(image_rgb, np.ndarray):
        raise ValueError(f"{what} must be a numpy array [H, W, 3] uint8 RGB, got {type(image_rgb).__name__}")
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.shape[0] == 0 or image_rgb.shape[1] == 0:
        raise ValueError(f"{what} must be [H, W, 3] RGB, got shape {list(image_rgb.shape)}; "
                         f"convert mono/RGBA images to RGB first (runtime.image_codec.decode_rgb)")
    if image_rgb.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 RGB, got {image_rgb.dtype}; scale it to 0..255 first")


def resize_to_model(image_rgb: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Resize ``[H, W, 3] uint8`` RGB to ``[h, w, 3] uint8`` (``size_hw = (h, w)``).

    INTER_AREA when shrinking (no aliasing), INTER_LINEAR when enlarging; returned as is when the
    size already matches.
    """
    check_rgb(image_rgb)
    h, w = size_hw
    if image_rgb.shape[:2] == (h, w):
        return image_rgb
    shrink = image_rgb.shape[0] * image_rgb.shape[1] > h * w
    return cv2.resize(image_rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def batch_images(images_rgb: Sequence[np.ndarray], size_hw: tuple[int, int]) -> np.ndarray:
    """Resize each ``[H_i, W_i, 3] uint8`` image and stack them: ``[N, h, w, 3] uint8`` contiguous."""
    h, w = size_hw
    batch = np.empty((len(images_rgb), h, w, 3), dtype=np.uint8)
    for i, image in enumerate(images_rgb):
        batch[i] = resize_to_model(image, size_hw)
    return batch


def scale_intrinsics(K: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """Camera matrix for an image resized from ``from_size`` to ``to_size`` (both ``(h, w)``).

    ``K`` is ``[3, 3]`` (pixels). Focal lengths scale with the size ratio; the principal point keeps
    its place on the image under the pixel-centre convention used by ``cv2.resize``:
    ``c' = (c + 0.5) * s - 0.5``. Returns ``[3, 3] float64``.
    """
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K must be a 3x3 camera matrix, got shape {list(K.shape)}")
    if min(from_size) <= 0 or min(to_size) <= 0:
        raise ValueError(f"image sizes must be positive (h, w), got {from_size} -> {to_size}")
    sy = to_size[0] / from_size[0]
    sx = to_size[1] / from_size[1]
    out = K.copy()
    out[0, 0] *= sx
    out[0, 1] *= sx
    out[1, 1] *= sy
    out[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    out[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return out


def intrinsics_problem(K: np.ndarray, calib_hw: tuple[int, int], image_hw: tuple[int, int]) -> str:
    """Why a camera's ``[3, 3]`` K (px, calibrated at ``calib_hw``) cannot serve an image of
    ``image_hw`` ("" when it can).

    K must be finite with positive focal lengths and a last row ``[0, 0, 1]``; a calibration size
    other than the image's must have the same aspect ratio (within 1 %), so that scaling K to the
    image is a resize and not a guess.
    """
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all():
        return f"intrinsics K are not a finite 3x3 matrix ({K.reshape(-1).tolist()})"
    if not (K[0, 0] > 0 and K[1, 1] > 0) or not np.allclose(K[2], (0.0, 0.0, 1.0)):
        return f"intrinsics K need fx, fy > 0 and a last row [0, 0, 1], got {K.reshape(-1).tolist()}"
    (ch, cw), (ih, iw) = calib_hw, image_hw
    if min(ch, cw, ih, iw) <= 0 or abs((cw / ch) / (iw / ih) - 1.0) > 0.01:
        return (f"camera_info is for {cw}x{ch} pixels, the image is {iw}x{ih} (another aspect "
                f"ratio)")
    return ""


def intrinsics_from_normalized(normalized: Sequence[float], size_hw: tuple[int, int]) -> np.ndarray:
    """``[3, 3] float64`` K at ``size_hw`` from the metadata's normalised intrinsics.

    ``normalized`` is ``[fx/W, fy/H, (cx + 0.5)/W, (cy + 0.5)/H]``: the principal point in the
    pixel-centre convention of :func:`scale_intrinsics`, so one value serves every image size.
    """
    fx, fy, cx, cy = (float(v) for v in normalized)
    h, w = size_hw
    return np.array([[fx * w, 0.0, cx * w - 0.5], [0.0, fy * h, cy * h - 0.5], [0.0, 0.0, 1.0]])


def normalized_intrinsics(K: np.ndarray, size_hw: tuple[int, int]) -> tuple[float, float, float, float]:
    """Inverse of :func:`intrinsics_from_normalized`: ``[3, 3]`` K (px) at ``size_hw`` -> metadata."""
    K = np.asarray(K, dtype=np.float64)
    h, w = size_hw
    return (K[0, 0] / w, K[1, 1] / h, (K[0, 2] + 0.5) / w, (K[1, 2] + 0.5) / h)
