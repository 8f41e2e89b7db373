"""Panoptic quality (Kirillov et al. 2019, panopticapi rules) on hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from unified_perception.contract import IGNORE_ID, PANOPTIC_LABEL_DIVISOR
from unified_perception.data.sample import PANOPTIC_IGNORE
from unified_perception.eval.metrics import PanopticAccumulator, panoptic_counts

V = IGNORE_ID * PANOPTIC_LABEL_DIVISOR      # 255000, void
ROAD, CAR_1, CAR_2 = 0, 1001, 1002          # classes: 0 road (stuff), 1 car (thing), 2 sky (stuff, absent)

GT = np.array([
    [V, V, CAR_1, CAR_1, ROAD, ROAD],
    [V, V, CAR_1, CAR_1, ROAD, ROAD],
    [ROAD, ROAD, ROAD, ROAD, CAR_2, CAR_2],
    [ROAD, ROAD, ROAD, ROAD, CAR_2, CAR_2],
])
PRED = np.array([
    [1003, 1003, 1001, 1001, 1001, ROAD],
    [1003, 1001, 1001, 1001, ROAD, ROAD],
    [ROAD, ROAD, ROAD, ROAD, ROAD, ROAD],
    [ROAD, 1005, ROAD, ROAD, ROAD, ROAD],
])


def accumulator() -> PanopticAccumulator:
    return PanopticAccumulator(thing_ids=[1], num_classes=3, class_names=["road", "car", "sky"])


def test_void_label_is_the_data_readers_panoptic_ignore() -> None:
    assert V == PANOPTIC_IGNORE == 255000


def test_one_match_one_false_positive_one_false_negative_and_void_by_hand() -> None:
    # car: pred 1001 (6 px) vs gt 1001 (4 px): intersection 4, 1 px of the prediction on void,
    #      IoU = 4 / (6 + 4 - 4 - 1) = 0.8 > 0.5 -> TP (0.8 with void left out of the union; 4/6 without)
    #      pred 1005 (1 px on road): no car to match -> FP
    #      gt 1002 (4 px, predicted as road): no car prediction -> FN
    #      pred 1003 (3 px, all on void): void fraction 3/3 > 0.5 -> not an FP
    # road: pred 14 px, gt 12 px, intersection 10, no void -> IoU 10 / 16 = 0.625 -> TP
    # sky: in neither -> not averaged
    acc = accumulator()
    acc.update(PRED, GT)
    result = acc.result()
    # road: SQ 0.625, RQ 1 / (1 + 0 + 0) = 1, PQ 0.625
    # car:  SQ 0.8, RQ 1 / (1 + 0.5 * 1 + 0.5 * 1) = 0.5, PQ 0.4
    assert result["per_class"]["road"] == {"pq": 0.625, "sq": 0.625, "rq": 1.0, "tp": 1, "fp": 0, "fn": 0}
    assert result["per_class"]["car"] == pytest.approx(
        {"pq": 0.4, "sq": 0.8, "rq": 0.5, "tp": 1, "fp": 1, "fn": 1})
    assert set(result["per_class"]) == {"road", "car"}
    assert result["pq"] == pytest.approx((0.625 + 0.4) / 2)        # 0.5125
    assert result["sq"] == pytest.approx((0.625 + 0.8) / 2)        # 0.7125
    assert result["rq"] == pytest.approx((1.0 + 0.5) / 2)          # 0.75
    assert result["pq_things"] == pytest.approx(0.4)
    assert result["pq_stuff"] == pytest.approx(0.625)


def test_perfect_prediction_scores_one_whatever_is_predicted_on_void() -> None:
    # void left unpredicted, road spilling onto void (left out of its union), a car only on void
    for on_void in (V, ROAD, 1009):
        pred = np.where(GT == V, on_void, GT)
        acc = accumulator()
        acc.update(pred, GT)
        result = acc.result()
        assert (result["pq"], result["sq"], result["rq"]) == (1.0, 1.0, 1.0), on_void


def test_iou_of_exactly_one_half_is_no_match() -> None:
    gt = np.array([[ROAD, CAR_1, CAR_1, ROAD, ROAD, ROAD]])
    pred = np.array([[CAR_1, CAR_1, CAR_1, CAR_1, ROAD, ROAD]])   # car IoU 2 / 4 = 0.5
    counts = panoptic_counts(pred, gt, num_classes=3)
    np.testing.assert_array_equal(counts.tp, [0, 0, 0])           # road IoU 2 / 4 = 0.5 too
    np.testing.assert_array_equal(counts.fp, [1, 1, 0])
    np.testing.assert_array_equal(counts.fn, [1, 1, 0])


def test_unknown_classes_are_a_clear_error() -> None:
    with pytest.raises(ValueError, match="predicted panoptic ids"):
        panoptic_counts(np.array([[7000]]), np.array([[0]]), num_classes=3)


def test_images_in_two_halves_merged_equal_all_at_once() -> None:
    rng = np.random.default_rng(5)
    gt = rng.choice([ROAD, CAR_1, CAR_2, 2000, V], size=(4, 6, 8))
    pred = np.where(rng.random(gt.shape) < 0.8, gt, rng.choice([ROAD, 1001, 1003, 2000], size=gt.shape))
    whole, first, second = accumulator(), accumulator(), accumulator()
    whole.update(pred, gt)
    first.update(pred[:3], gt[:3])
    second.update(pred[3], gt[3])
    first.merge(second)
    merged, expected = first.result(), whole.result()
    assert merged.pop("per_class") == expected.pop("per_class")
    assert merged == pytest.approx(expected, rel=1e-12)
    assert whole.result()["pq"] > 0.0


def reference_counts(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> tuple[np.ndarray, ...]:
    """panopticapi's ``pq_compute_single_core`` written plainly: dictionaries of segments and of
    segment-pair intersections, a loop over the pairs (slow, for checking only)."""
    tp, fp, fn, iou_sum = (np.zeros(num_classes) for _ in range(4))
    gt_area = {int(i): int(np.sum(gt == i)) for i in np.unique(gt) if i != V}
    pred_area = {int(i): int(np.sum(pred == i)) for i in np.unique(pred) if i // 1000 != IGNORE_ID}
    pair_area: dict[tuple[int, int], int] = {}
    for g, p in zip(gt.ravel().tolist(), pred.ravel().tolist()):
        pair_area[(g, p)] = pair_area.get((g, p), 0) + 1
    matched_gt, matched_pred = set(), set()
    for (g, p), inter in pair_area.items():
        if g == V or p not in pred_area or g // 1000 != p // 1000:
            continue
        union = pred_area[p] + gt_area[g] - inter - pair_area.get((V, p), 0)
        if inter / union > 0.5:
            tp[g // 1000] += 1
            iou_sum[g // 1000] += inter / union
            matched_gt.add(g)
            matched_pred.add(p)
    for g in gt_area:
        if g not in matched_gt:
            fn[g // 1000] += 1
    for p, area in pred_area.items():
        if p not in matched_pred and pair_area.get((V, p), 0) / area <= 0.5:
            fp[p // 1000] += 1
    return tp, fp, fn, iou_sum


def test_vectorised_matching_equals_panopticapis_pair_loop_on_random_scenes() -> None:
    rng = np.random.default_rng(10)
    for _ in range(20):
        # blocky scenes: 4x4 cells of one segment each, so segments overlap in varied proportions
        gt = np.kron(rng.choice([0, 2000, 1001, 1002, 1003, V], size=(4, 5)), np.ones((4, 4), int))
        pred = np.kron(rng.choice([0, 2000, 1001, 1002, 1007, V], size=(8, 10)), np.ones((2, 2), int))
        pred = np.where(rng.random(gt.shape) < 0.6, gt, pred)
        counts = panoptic_counts(pred, gt, num_classes=3)
        for ours, theirs in zip(counts, reference_counts(pred, gt, 3)):
            np.testing.assert_allclose(ours, theirs, rtol=1e-12)
