"""Class weights for the semantic cross-entropy from the training data's class frequencies.

Driving scenes are mostly road, building and sky; poles, signs, walls and people cover a few
thousandths of the pixels, so an unweighted loss learns them last, and mIoU counts every class
present equally. ``weight_c = (f_c / f_max) ** -exponent`` for the pixel frequency ``f_c`` of each
class in the training data (exponent 0.5: inverse square-root frequency), capped at ``max_weight``,
then scaled so that the average labelled pixel keeps weight 1 (the loss keeps its scale). Classes
never seen get weight 1 (they contribute no pixels anyway).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from unified_perception.contract import IGNORE_ID, NUM_CLASSES

DEFAULT_SAMPLES = 256
"""Windows read, evenly spaced over the training mix, to count the classes."""


def class_frequencies(dataset: Sequence, samples: int = DEFAULT_SAMPLES) -> np.ndarray:
    """Pixel frequency ``[NUM_CLASSES]`` (sums to 1) of each train id in the semantic labels of
    ``samples`` windows evenly spaced over ``dataset`` (items with a ``semantic`` ``[H, W]`` label
    or None). All zeros when no window has labels."""
    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    if len(dataset) == 0:
        return counts.astype(np.float64)
    for index in np.unique(np.linspace(0, len(dataset) - 1, samples).astype(np.int64)):
        semantic = dataset[int(index)].semantic
        if semantic is None:
            continue
        labelled = semantic[semantic != IGNORE_ID].astype(np.int64)
        counts += np.bincount(labelled, minlength=NUM_CLASSES)[:NUM_CLASSES]
    total = counts.sum()
    return counts / total if total else counts.astype(np.float64)


def balanced_class_weights(frequencies: np.ndarray, exponent: float = 0.5,
                           max_weight: float = 20.0) -> np.ndarray:
    """``[NUM_CLASSES]`` weights (see the module docstring) from pixel ``frequencies``."""
    if exponent < 0:
        raise ValueError(f"class balance exponent must be >= 0, got {exponent}")
    freq = np.asarray(frequencies, dtype=np.float64)
    seen = freq > 0
    weights = np.ones_like(freq)
    if not seen.any():
        return weights
    weights[seen] = np.minimum((freq[seen] / freq.max()) ** -exponent, max_weight)
    return weights / float((weights * freq).sum() / freq.sum())
