"""Model outputs to the encodings the node publishes (see ``topics.py``). Vectorised numpy."""

from __future__ import annotations

import numpy as np


def motion_mask(motion_prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """``[h, w] float32`` probability -> ``[h, w] uint8`` mask, 255 = independently moving."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"motion threshold must be within [0, 1], got {threshold}")
    return np.where(motion_prob > threshold, np.uint8(255), np.uint8(0))


def instances_u16(instances: np.ndarray) -> np.ndarray:
    """``[h, w] int32`` instance ids -> ``[h, w] uint16`` (``16UC1``); ids beyond 65535 saturate."""
    return np.clip(instances, 0, np.iinfo(np.uint16).max).astype(np.uint16)
