"""Class weights of the semantic loss from the training data's class frequencies."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from unified_perception.contract import IGNORE_ID, NUM_CLASSES
from unified_perception.train.class_balance import balanced_class_weights, class_frequencies
from unified_perception.train.losses import LossWeights
from unified_perception.train.losses.supervised import semantic_cross_entropy


def _labels(counts: dict[int, int], ignored: int = 0) -> np.ndarray:
    flat = np.concatenate([np.full(n, c, np.uint8) for c, n in counts.items()] +
                          [np.full(ignored, IGNORE_ID, np.uint8)])
    return flat.reshape(1, -1)


def test_frequencies_count_labelled_pixels_of_every_window_read() -> None:
    data = [SimpleNamespace(semantic=_labels({0: 6, 5: 2}, ignored=4)),
            SimpleNamespace(semantic=None),                       # a window without labels
            SimpleNamespace(semantic=_labels({0: 2}))]
    freq = class_frequencies(data, samples=10)
    assert freq.shape == (NUM_CLASSES,)
    assert freq[0] == pytest.approx(0.8) and freq[5] == pytest.approx(0.2)
    assert freq.sum() == pytest.approx(1.0)
    assert not class_frequencies([SimpleNamespace(semantic=None)]).any()


def test_rare_classes_weigh_more_and_the_average_pixel_keeps_weight_one() -> None:
    freq = np.zeros(NUM_CLASSES)
    freq[[0, 2, 5]] = [0.9, 0.099, 0.001]
    w = balanced_class_weights(freq, exponent=0.5, max_weight=20.0)
    assert w[5] > w[2] > w[0]
    assert w[5] / w[0] == pytest.approx(20.0)                      # 900x rarer: 30x, capped
    assert float((w * freq).sum()) == pytest.approx(1.0)          # pixel-weighted mean is 1
    assert w[2] / w[0] == pytest.approx((0.099 / 0.9) ** -0.5)
    capped = balanced_class_weights(freq, exponent=1.0, max_weight=5.0)
    assert capped[5] / capped[0] == pytest.approx(5.0)            # 900x rarer, capped at 5x
    assert np.all(balanced_class_weights(freq, exponent=0.0) == 1.0)
    with pytest.raises(ValueError, match="exponent"):
        balanced_class_weights(freq, exponent=-1.0)


def test_weighted_cross_entropy_scales_each_class_pixel_loss() -> None:
    target = torch.tensor([[[0, 1]]])                              # one pixel of class 0, one of 1
    logits = torch.zeros(1, 3, 1, 2)                               # uniform: CE = log 3 per pixel
    has = torch.tensor([True])
    weights = torch.tensor([1.0, 3.0, 1.0])
    plain = semantic_cross_entropy(logits, target, has)
    weighted = semantic_cross_entropy(logits, target, has, class_weights=weights)
    assert float(plain) == pytest.approx(np.log(3))
    assert float(weighted) == pytest.approx(2 * np.log(3))         # (1 + 3) / 2 pixels


def test_recipe_class_weights_are_checked() -> None:
    with pytest.raises(ValueError, match="19 weights"):
        LossWeights(semantic_class_weights=(1.0, 2.0))
    with pytest.raises(ValueError, match="semantic_class_balance"):
        LossWeights(semantic_class_balance=-0.5)
