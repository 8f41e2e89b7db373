"""The validation score that picks best.pt: every task's relative change counts alike."""

from __future__ import annotations

import math

import pytest

from unified_perception.train.validation import MIN_RELATIVE_ERROR, overall_score

# Error / baseline ratios of a trained synthetic student (depth AbsRel of the mean-depth baseline's,
# 1 - mIoU and 1 - PQ of the most-frequent-class baseline's, 1 - motion IoU, ...).
STUDENT = {"depth": 0.094, "semantic": 0.42, "panoptic": 0.62, "motion": 0.27, "scene_flow": 0.58,
           "odometry": 0.13}


def test_a_50_percent_worse_depth_outweighs_a_few_percent_better_segmentation_and_motion() -> None:
    worse_depth = {"depth": 0.094 * 1.5, "semantic": 0.42 * 0.97, "panoptic": 0.62 * 0.97,
                   "motion": 0.27 * 0.95, "scene_flow": 0.58 * 0.97, "odometry": 0.13}
    assert overall_score(worse_depth) > overall_score(STUDENT)
    # The arithmetic mean it replaced preferred the worse depth.
    assert sum(worse_depth.values()) < sum(STUDENT.values())


def test_equal_relative_changes_of_any_task_move_the_score_equally() -> None:
    moved = [overall_score({**STUDENT, task: value * 1.1}) for task, value in STUDENT.items()]
    assert moved == pytest.approx([moved[0]] * len(moved), rel=1e-12)
    assert moved[0] == pytest.approx(overall_score(STUDENT) * 1.1 ** (1 / len(STUDENT)), rel=1e-12)


def test_only_the_named_tasks_count_and_a_perfect_task_is_floored() -> None:
    assert overall_score(STUDENT, ("depth", "motion")) == pytest.approx(math.sqrt(0.094 * 0.27))
    assert overall_score({"motion": 0.0, "depth": 0.1}) == pytest.approx(math.sqrt(MIN_RELATIVE_ERROR * 0.1))
    assert overall_score(STUDENT, ("steering",)) == math.inf
    assert overall_score({}) == math.inf
