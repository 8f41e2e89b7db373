"""Motion segmentation metrics: IoU, precision and recall of the "independently moving" class.

Binary-segmentation definitions over all evaluated pixels of a data set (pixel counts pooled over
frames, not a mean of per-frame figures): ``IoU = TP / (TP + FP + FN)`` (Jaccard index, as the
per-class IoU of PASCAL VOC, Everingham et al. IJCV 2010), ``precision = TP / (TP + FP)``,
``recall = TP / (TP + FN)``, where positive = moving.
"""

from __future__ import annotations

import numpy as np


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")


class MotionAccumulator:
    """TP / FP / FN pixel counts of the moving class over frames (three integers of memory)."""

    def __init__(self) -> None:
        self.tp = self.fp = self.fn = 0

    def update(self, pred_mask: np.ndarray, gt_mask: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add ``[H, W]`` (or ``[N, H, W]``) masks, bool or integer (non-zero = independently moving,
        e.g. mono8 255). Only pixels where ``valid`` (same shape, default all) is True are counted."""
        for name, mask in (("predicted", pred_mask), ("true", gt_mask)):
            if np.asarray(mask).dtype.kind not in "biu":
                raise ValueError(f"{name} motion mask must be bool or integer, got "
                                 f"{np.asarray(mask).dtype}; threshold a motion probability first")
        pred = np.asarray(pred_mask, dtype=bool)
        gt = np.asarray(gt_mask, dtype=bool)
        if pred.shape != gt.shape or (valid is not None and np.shape(valid) != gt.shape):
            raise ValueError(f"motion masks need one shape, got prediction {pred.shape}, ground truth "
                             f"{gt.shape}, valid {None if valid is None else np.shape(valid)}")
        if valid is not None:
            keep = np.asarray(valid, dtype=bool)
            pred, gt = pred[keep], gt[keep]
        self.tp += int(np.count_nonzero(pred & gt))
        self.fp += int(np.count_nonzero(pred & ~gt))
        self.fn += int(np.count_nonzero(~pred & gt))

    def result(self) -> dict[str, float]:
        """``{"iou", "precision", "recall"}`` of the moving class, fractions (NaN where undefined)."""
        return {"iou": _ratio(self.tp, self.tp + self.fp + self.fn),
                "precision": _ratio(self.tp, self.tp + self.fp),
                "recall": _ratio(self.tp, self.tp + self.fn)}

    def merge(self, other: MotionAccumulator) -> None:
        """Add ``other``'s counts."""
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
