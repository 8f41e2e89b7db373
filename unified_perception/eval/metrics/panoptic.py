"""Panoptic quality PQ = SQ * RQ (Kirillov et al., "Panoptic Segmentation", CVPR 2019).

Segment matching and counting follow panopticapi's ``pq_compute`` (COCO panoptic evaluation):

* Panoptic ids are ``class * label_divisor + instance`` (:data:`contract.PANOPTIC_LABEL_DIVISOR`);
  stuff classes have instance 0, i.e. one segment per class and image.
* Ground-truth pixels of class ``ignore_id`` (id ``255000`` = ``data.sample.PANOPTIC_IGNORE``) are
  void. Predicted pixels of class ``ignore_id`` are "no prediction" and form no segment.
* A predicted and a ground-truth segment of the same class match when
  ``IoU = |p ∩ g| / (|p| + |g| - |p ∩ g| - |p ∩ void|) > 0.5``: the part of the predicted segment
  that lies on void is left out of the union. Such a match is unique (Kirillov et al., Thm. 1).
* Unmatched ground-truth segments are false negatives. Unmatched predicted segments are false
  positives unless more than half of their area lies on void (``|p ∩ void| / |p| > 0.5``).
  Crowd regions are not modelled.

Per class: ``SQ = sum(IoU of matches) / TP``, ``RQ = TP / (TP + FP/2 + FN/2)``, ``PQ = SQ * RQ``;
data-set figures are the plain mean over the classes that appear (``TP + FP + FN > 0``).
All figures are fractions in [0, 1] (panopticapi prints them times 100).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from unified_perception.contract import IGNORE_ID, PANOPTIC_LABEL_DIVISOR

MATCH_IOU = 0.5
"""A predicted and a true segment match when their IoU is strictly greater than this."""

VOID_FRACTION_FP = 0.5
"""An unmatched predicted segment with more than this fraction of its area on void is no false positive."""


class PanopticCounts(NamedTuple):
    """Per-class matching counts, each ``[C]``: true positives, false positives, false negatives
    (int64) and the sum of the IoUs of the matched pairs (float64)."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    iou_sum: np.ndarray


class _Segments(NamedTuple):
    """The segments of one panoptic image: classes ``[S]``, areas ``[S]`` (pixels), void flags ``[S]``
    and, for every pixel, the index of its segment ``[H * W]``."""

    classes: np.ndarray
    areas: np.ndarray
    void: np.ndarray
    pixel_index: np.ndarray


def _segments(panoptic: np.ndarray, label_divisor: int, ignore_id: int, num_classes: int,
              what: str) -> _Segments:
    ids, pixel_index = np.unique(np.asarray(panoptic, dtype=np.int64).ravel(), return_inverse=True)
    classes = ids // label_divisor
    void = classes == ignore_id
    bad = ~void & ((classes < 0) | (classes >= num_classes))
    if bad.any():
        raise ValueError(f"{what} panoptic ids must be class * {label_divisor} + instance with class "
                         f"in [0, {num_classes}) or {ignore_id} (void); found ids "
                         f"{ids[bad][:10].tolist()}")
    return _Segments(classes, np.bincount(pixel_index, minlength=ids.size), void, pixel_index)


def panoptic_counts(pred_panoptic: np.ndarray, gt_panoptic: np.ndarray, num_classes: int, *,
                    label_divisor: int = PANOPTIC_LABEL_DIVISOR,
                    ignore_id: int = IGNORE_ID) -> PanopticCounts:
    """Match the segments of one image (panopticapi's rules, see the module docstring).

    ``pred_panoptic``, ``gt_panoptic``: ``[H, W]`` integer panoptic ids ``class * label_divisor +
    instance``. All segment-pair overlaps come from one ``np.unique`` over the pair index of every
    pixel; no loop over pixels or segments.
    """
    if np.shape(pred_panoptic) != np.shape(gt_panoptic):
        raise ValueError(f"prediction and ground truth need the same shape, got "
                         f"{np.shape(pred_panoptic)} and {np.shape(gt_panoptic)}")
    gt = _segments(gt_panoptic, label_divisor, ignore_id, num_classes, "ground-truth")
    pred = _segments(pred_panoptic, label_divisor, ignore_id, num_classes, "predicted")
    num_pred = pred.classes.size
    pairs, intersection = np.unique(gt.pixel_index * num_pred + pred.pixel_index, return_counts=True)
    g, p = pairs // num_pred, pairs % num_pred

    on_void = gt.void[g]
    void_overlap = np.bincount(p[on_void], weights=intersection[on_void], minlength=num_pred)
    same_class = ~on_void & ~pred.void[p] & (gt.classes[g] == pred.classes[p])
    union = pred.areas[p] + gt.areas[g] - intersection - void_overlap[p]
    iou = intersection / np.maximum(union, 1)   # union is 0 only for void pairs, which never match
    match = same_class & (iou > MATCH_IOU)

    gt_matched = np.zeros(gt.classes.size, dtype=bool)
    gt_matched[g[match]] = True
    pred_matched = np.zeros(num_pred, dtype=bool)
    pred_matched[p[match]] = True
    false_negative = ~gt.void & ~gt_matched
    false_positive = ~pred.void & ~pred_matched & (void_overlap / pred.areas <= VOID_FRACTION_FP)

    def per_class(classes: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(classes, weights=weights, minlength=num_classes)

    return PanopticCounts(
        tp=per_class(gt.classes[g[match]]).astype(np.int64),
        fp=per_class(pred.classes[false_positive]).astype(np.int64),
        fn=per_class(gt.classes[false_negative]).astype(np.int64),
        iou_sum=per_class(gt.classes[g[match]], iou[match]).astype(np.float64),
    )


class PanopticQuality(NamedTuple):
    """Per-class ``[C]`` PQ, SQ, RQ (fractions; 0 where a class has no match, as panopticapi) and
    whether the class appears (``TP + FP + FN > 0``)."""

    pq: np.ndarray
    sq: np.ndarray
    rq: np.ndarray
    appears: np.ndarray


def panoptic_quality(counts: PanopticCounts) -> PanopticQuality:
    """Per-class PQ, SQ, RQ from accumulated counts (Kirillov et al. 2019, Eq. 1 and 2)."""
    tp = counts.tp.astype(np.float64)
    denominator = tp + 0.5 * counts.fp + 0.5 * counts.fn
    appears = denominator > 0
    sq = np.divide(counts.iou_sum, tp, out=np.zeros_like(tp), where=tp > 0)
    rq = np.divide(tp, denominator, out=np.zeros_like(tp), where=appears)
    return PanopticQuality(sq * rq, sq, rq, appears)


def _mean_over(values: np.ndarray, classes: np.ndarray) -> float:
    return float(np.mean(values[classes])) if classes.any() else float("nan")


class PanopticAccumulator:
    """PQ / SQ / RQ over a data set: per-class TP, FP, FN and IoU sums (``4 * C`` numbers)."""

    def __init__(self, thing_ids: Sequence[int], num_classes: int,
                 class_names: Sequence[str] | None = None, *,
                 label_divisor: int = PANOPTIC_LABEL_DIVISOR, ignore_id: int = IGNORE_ID) -> None:
        """``thing_ids``: classes with instances (the rest are stuff); ``class_names[c]`` names class
        ``c`` in :meth:`result` (default ``"0"``, ``"1"``, ...)."""
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for {num_classes} classes")
        things = np.asarray(list(thing_ids), dtype=np.int64)
        if things.size and (things.min() < 0 or things.max() >= num_classes):
            raise ValueError(f"thing ids {things.tolist()} must lie in [0, {num_classes})")
        self.num_classes = int(num_classes)
        self.class_names = tuple(class_names) if class_names is not None else tuple(
            str(c) for c in range(num_classes))
        self.is_thing = np.zeros(num_classes, dtype=bool)
        self.is_thing[things] = True
        self.label_divisor = label_divisor
        self.ignore_id = ignore_id
        self.counts = PanopticCounts(np.zeros(num_classes, np.int64), np.zeros(num_classes, np.int64),
                                     np.zeros(num_classes, np.int64), np.zeros(num_classes))

    def update(self, pred_panoptic: np.ndarray, gt_panoptic: np.ndarray) -> None:
        """Add one ``[H, W]`` image, or ``[N, H, W]`` images (each matched on its own)."""
        pred_panoptic, gt_panoptic = np.asarray(pred_panoptic), np.asarray(gt_panoptic)
        if gt_panoptic.ndim == 2:
            pred_panoptic, gt_panoptic = pred_panoptic[None], gt_panoptic[None]
        if pred_panoptic.shape != gt_panoptic.shape or gt_panoptic.ndim != 3:
            raise ValueError(f"panoptic maps must both be [H, W] or [N, H, W], got "
                             f"{pred_panoptic.shape} and {gt_panoptic.shape}")
        for pred_image, gt_image in zip(pred_panoptic, gt_panoptic):
            image = panoptic_counts(pred_image, gt_image, self.num_classes,
                                    label_divisor=self.label_divisor, ignore_id=self.ignore_id)
            self._add(image)

    def _add(self, counts: PanopticCounts) -> None:
        self.counts = PanopticCounts(*(mine + theirs for mine, theirs in zip(self.counts, counts)))

    def result(self) -> dict:
        """``{"pq", "sq", "rq", "pq_things", "sq_things", "rq_things", "pq_stuff", "sq_stuff",
        "rq_stuff", "per_class": {name: {"pq", "sq", "rq", "tp", "fp", "fn"}}}``.

        Means over the classes that appear (NaN where none does, e.g. ``pq_things`` without things);
        ``per_class`` lists only those classes.
        """
        quality = panoptic_quality(self.counts)
        result: dict = {}
        for suffix, selected in (("", quality.appears), ("_things", quality.appears & self.is_thing),
                                 ("_stuff", quality.appears & ~self.is_thing)):
            for name in ("pq", "sq", "rq"):
                result[name + suffix] = _mean_over(getattr(quality, name), selected)
        result["per_class"] = {
            self.class_names[c]: {"pq": float(quality.pq[c]), "sq": float(quality.sq[c]),
                                  "rq": float(quality.rq[c]), "tp": int(self.counts.tp[c]),
                                  "fp": int(self.counts.fp[c]), "fn": int(self.counts.fn[c])}
            for c in np.flatnonzero(quality.appears)}
        return result

    def merge(self, other: PanopticAccumulator) -> None:
        """Add ``other``'s counts (same classes and thing ids)."""
        if other.num_classes != self.num_classes or not np.array_equal(other.is_thing, self.is_thing):
            raise ValueError("cannot merge panoptic accumulators with different classes or thing ids")
        self._add(other.counts)
