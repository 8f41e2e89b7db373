"""Semantic segmentation metrics: confusion matrix, per-class IoU, mIoU and pixel accuracy.

IoU (Jaccard index) per class ``c`` as in the PASCAL VOC challenge (Everingham et al., IJCV 2010) and
the Cityscapes benchmark (Cordts et al., CVPR 2016): ``TP / (TP + FP + FN)`` over all pixels of the
data set, from one confusion matrix accumulated over every image (not a mean of per-image IoUs).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from unified_perception.contract import IGNORE_ID


def _check_labels(name: str, labels: np.ndarray, num_classes: int) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        raise ValueError(f"{name} class ids must be in [0, {num_classes}) (or the ignore id in the "
                         f"ground truth), found {np.unique(bad)[:10].tolist()}")


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int,
                     ignore_id: int = IGNORE_ID) -> np.ndarray:
    """``[C, C] int64`` pixel counts: row = ground-truth class, column = predicted class.

    ``pred``, ``gt``: integer class ids of the same shape (``[H, W]``, ``[N, H, W]``, ...). Pixels
    whose ground truth is ``ignore_id`` are not counted; every other id (in both) must lie in
    ``[0, num_classes)``. One ``np.bincount`` over ``gt * C + pred``.
    """
    if np.shape(pred) != np.shape(gt):
        raise ValueError(f"prediction and ground truth need the same shape, got {np.shape(pred)} "
                         f"and {np.shape(gt)}")
    gt = np.asarray(gt).ravel().astype(np.int64)
    pred = np.asarray(pred).ravel().astype(np.int64)
    labelled = gt != ignore_id
    gt, pred = gt[labelled], pred[labelled]
    _check_labels("ground-truth", gt, num_classes)
    _check_labels("predicted", pred, num_classes)
    counts = np.bincount(gt * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def iou_per_class(conf: np.ndarray) -> np.ndarray:
    """``[C] float64`` IoU ``TP / (TP + FP + FN)`` of each class from a ``[C, C]`` confusion matrix
    (rows = ground truth); NaN for a class absent from both ground truth and prediction."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diag(conf)
    union = conf.sum(axis=0) + conf.sum(axis=1) - tp
    return np.divide(tp, union, out=np.full(tp.shape, np.nan), where=union > 0)


def mean_iou(conf: np.ndarray) -> float:
    """Mean of :func:`iou_per_class` over the classes present in the ground truth (non-zero row).

    Classes that occur only in the prediction (IoU 0) are left out, as in mmsegmentation's
    ``nanmean`` over classes with ground truth. NaN when no pixel is labelled.
    """
    present = np.asarray(conf).sum(axis=1) > 0
    return float(np.mean(iou_per_class(conf)[present])) if present.any() else float("nan")


def pixel_accuracy(conf: np.ndarray) -> float:
    """Fraction of labelled pixels whose class is right: ``trace(conf) / sum(conf)`` (NaN if none)."""
    total = np.asarray(conf).sum()
    return float(np.trace(conf) / total) if total else float("nan")


class SemanticAccumulator:
    """Confusion matrix over a data set (``C * C`` int64, constant memory) and its IoU figures."""

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None,
                 ignore_id: int = IGNORE_ID) -> None:
        """``class_names[c]`` names class ``c`` in :meth:`result` (default: ``"0"``, ``"1"``, ...)."""
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for {num_classes} classes")
        self.num_classes = int(num_classes)
        self.class_names = tuple(class_names) if class_names is not None else tuple(
            str(c) for c in range(num_classes))
        self.ignore_id = ignore_id
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add ``[H, W]`` or ``[N, H, W]`` predicted and true class ids (see :func:`confusion_matrix`)."""
        self.confusion += confusion_matrix(pred, gt, self.num_classes, self.ignore_id)

    def result(self) -> dict:
        """``{"miou", "pixel_acc", "per_class": {name: iou}}``; per_class lists only classes present
        in the ground truth, the ones :func:`mean_iou` averages. Fractions in [0, 1]."""
        iou = iou_per_class(self.confusion)
        present = self.confusion.sum(axis=1) > 0
        return {
            "miou": mean_iou(self.confusion),
            "pixel_acc": pixel_accuracy(self.confusion),
            "per_class": {self.class_names[c]: float(iou[c]) for c in np.flatnonzero(present)},
        }

    def merge(self, other: SemanticAccumulator) -> None:
        """Add ``other``'s confusion matrix (same number of classes)."""
        if other.confusion.shape != self.confusion.shape:
            raise ValueError(f"cannot merge semantic accumulators of {other.num_classes} and "
                             f"{self.num_classes} classes")
        self.confusion += other.confusion
