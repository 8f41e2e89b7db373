"""Semantic IoU / mIoU and motion-mask IoU against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from unified_perception.eval.metrics import (
    MotionAccumulator, SemanticAccumulator, confusion_matrix, iou_per_class, mean_iou)

IGNORE = 255
# 3 classes; class 2 never in the ground truth but predicted once.
GT = np.array([[0, 0, 0, 1],
               [1, 1, IGNORE, 0]])
PRED = np.array([[0, 0, 1, 1],
                 [1, 2, 2, 2]])


def test_confusion_rows_are_ground_truth_and_ignore_pixels_are_dropped() -> None:
    conf = confusion_matrix(PRED, GT, num_classes=3)
    # gt 0: pred 0,0,1 and (last pixel) 2 -> [2, 1, 1]; gt 1: pred 1,1,2 -> [0, 2, 1]; ignore pixel dropped
    np.testing.assert_array_equal(conf, [[2, 1, 1], [0, 2, 1], [0, 0, 0]])
    assert conf.dtype == np.int64


def test_iou_by_hand_and_classes_absent_from_ground_truth_leave_the_mean() -> None:
    conf = confusion_matrix(PRED, GT, num_classes=3)
    iou = iou_per_class(conf)
    # class 0: TP 2, FP 0, FN 2 -> 2/4; class 1: TP 2, FP 1, FN 1 -> 2/4; class 2: TP 0, FP 2 -> 0
    np.testing.assert_allclose(iou, [0.5, 0.5, 0.0])
    assert mean_iou(conf) == pytest.approx(0.5)          # class 2 is not in the ground truth
    assert np.isnan(iou_per_class(np.zeros((2, 2), np.int64))).all()


def test_accumulator_reports_named_classes_present_in_ground_truth_and_pixel_accuracy() -> None:
    accumulator = SemanticAccumulator(3, ["road", "car", "sky"])
    accumulator.update(PRED, GT)
    result = accumulator.result()
    assert result["per_class"] == {"road": 0.5, "car": 0.5}
    assert result["miou"] == pytest.approx(0.5)
    assert result["pixel_acc"] == pytest.approx(4 / 7)     # 4 right of 7 labelled pixels


def test_out_of_range_class_ids_are_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"predicted class ids must be in \[0, 3\)"):
        confusion_matrix(np.array([[7]]), np.array([[0]]), num_classes=3)


def test_semantic_halves_merged_equal_all_at_once() -> None:
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 5, size=(4, 6, 7))
    gt[gt == 4] = IGNORE
    pred = rng.integers(0, 5, size=gt.shape)
    whole, first, second = (SemanticAccumulator(5) for _ in range(3))
    whole.update(pred, gt)
    first.update(pred[:1], gt[:1])
    second.update(pred[1:], gt[1:])
    first.merge(second)
    np.testing.assert_array_equal(first.confusion, whole.confusion)
    assert first.result() == whole.result()


def test_motion_iou_precision_recall_by_hand() -> None:
    gt = np.array([[1, 1, 0, 0, 1]], dtype=bool)
    pred = np.array([[1, 0, 1, 0, 1]], dtype=bool)
    valid = np.array([[1, 1, 1, 1, 0]], dtype=bool)
    accumulator = MotionAccumulator()
    accumulator.update(pred, gt, valid)
    # valid pixels: TP 1 (first), FN 1 (second), FP 1 (third), TN 1; the last is not evaluated
    assert accumulator.result() == {"iou": 1 / 3, "precision": 1 / 2, "recall": 1 / 2}
    accumulator.update(pred, gt)      # all 5 pixels: TP 2, FP 1, FN 1; totals TP 3, FP 2, FN 2
    assert accumulator.result() == {"iou": 3 / 7, "precision": 3 / 5, "recall": 3 / 5}


def test_motion_halves_merged_equal_all_at_once_and_empty_is_nan() -> None:
    assert all(np.isnan(v) for v in MotionAccumulator().result().values())
    rng = np.random.default_rng(2)
    pred, gt = rng.random((2, 3, 8, 8)) > 0.5
    whole, first, second = MotionAccumulator(), MotionAccumulator(), MotionAccumulator()
    whole.update(pred, gt)
    first.update(pred[0], gt[0])
    second.update(pred[1:], gt[1:])
    first.merge(second)
    assert first.result() == whole.result()
