"""ATE / RPE (Sturm et al. 2012, evo) on trajectories moved by known transforms, and against evo."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unified_perception.eval.metrics import (
    TrajectoryAccumulator, absolute_trajectory_error, relative_pose_error,
    relative_poses_to_trajectory, umeyama_alignment)
from unified_perception.transforms import make_transform, rpy_to_matrix

# Six poses at +-x, +-y, +-z (1 m from their centroid, the origin), each with its own orientation.
POSITIONS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
GT = make_transform(rpy_to_matrix(np.linspace(0, 1, 6), np.linspace(0, -0.5, 6), np.linspace(0, 2, 6)),
                    POSITIONS)
R_Z90 = rpy_to_matrix(0.0, 0.0, math.pi / 2)     # x -> y, y -> -x
SCALE, SHIFT = 2.0, np.array([1.0, 2.0, 3.0])


def similarity(poses: np.ndarray, scale: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Poses moved by the similarity ``p -> s R p + t`` (orientations turned by R)."""
    return make_transform(R @ poses[:, :3, :3], scale * poses[:, :3, 3] @ R.T + t)


def random_trajectory(rng: np.random.Generator, n: int) -> np.ndarray:
    angles = np.cumsum(rng.normal(0.0, 0.1, (n, 3)), axis=0)
    return make_transform(rpy_to_matrix(angles[:, 0], angles[:, 1], angles[:, 2]),
                          np.cumsum(rng.normal(0.5, 0.3, (n, 3)), axis=0))


def test_umeyama_recovers_a_known_similarity() -> None:
    src = np.random.default_rng(7).normal(size=(3, 10))
    R, t, s = umeyama_alignment(src, SCALE * R_Z90 @ src + SHIFT[:, None], with_scale=True)
    np.testing.assert_allclose(R, R_Z90, atol=1e-12)
    np.testing.assert_allclose(t, SHIFT, atol=1e-12)
    assert s == pytest.approx(SCALE)


def test_a_straight_drive_still_aligns() -> None:
    line = make_transform(np.repeat(np.eye(3)[None], 5, 0), np.outer(np.arange(5.0), [1.0, 0.0, 0.0]))
    moved = similarity(line, SCALE, R_Z90, SHIFT)
    assert absolute_trajectory_error(moved, line, "sim3") == pytest.approx(0.0, abs=1e-12)
    # SE(3): residual (s - 1) * distance from the centroid: sqrt(mean(4, 1, 0, 1, 4)) = sqrt(2)
    assert absolute_trajectory_error(moved, line, "se3") == pytest.approx(math.sqrt(2.0))


def test_a_trajectory_that_never_moves_aligns_onto_the_centroid() -> None:
    still = np.repeat(np.eye(4)[None], 6, 0)
    # every aligned point lands on the truth's centroid (the origin), 1 m from each true position
    assert absolute_trajectory_error(still, GT, "sim3") == pytest.approx(1.0)
    assert absolute_trajectory_error(still, GT, "se3") == pytest.approx(1.0)


def test_ate_of_a_trajectory_moved_by_a_similarity() -> None:
    pred = similarity(GT, SCALE, R_Z90, SHIFT)
    assert absolute_trajectory_error(pred, GT, "sim3") == pytest.approx(0.0, abs=1e-12)
    # SE(3): rotation and shift are undone, the scale is not: every point stays (s - 1) = 1 times its
    # 1 m distance from the centroid away, so the RMSE is 1 m
    assert absolute_trajectory_error(pred, GT, "se3") == pytest.approx(1.0)
    # no alignment: pred - gt for +x, -x, +y, -y, +z, -z =
    # (0,4,3) (2,0,3) (-1,1,3) (3,3,3) (1,2,4) (1,2,2): squared 25 13 11 27 21 9, sum 106
    assert absolute_trajectory_error(pred, GT, "none") == pytest.approx(math.sqrt(106 / 6))


def test_rpe_is_zero_for_a_rigidly_moved_trajectory_and_not_for_a_scaled_one() -> None:
    rigid = similarity(GT, 1.0, R_Z90, SHIFT)
    rpe = relative_pose_error(rigid, GT)
    assert (rpe.trans_rmse_m, rpe.rot_rmse_deg) == pytest.approx((0.0, 0.0), abs=1e-6)
    assert rpe.pairs == 5
    trans_rmse_m, rot_rmse_deg = relative_pose_error(similarity(GT, SCALE, R_Z90, SHIFT), GT)
    assert trans_rmse_m > 0.5 and rot_rmse_deg == pytest.approx(0.0, abs=1e-6)


def test_rpe_of_a_known_step_error() -> None:
    gt = relative_poses_to_trajectory(np.repeat(make_transform(np.eye(3), [1.0, 0.0, 0.0])[None], 4, 0))
    step = make_transform(rpy_to_matrix(0.0, 0.0, math.radians(2.0)), [1.1, 0.0, 0.0])
    pred = relative_poses_to_trajectory(np.repeat(step[None], 4, 0))
    # every step: E = (1 m forward)^-1 (1.1 m forward, 2 deg yaw) = (0.1 m forward, 2 deg yaw)
    rpe = relative_pose_error(pred, gt)
    assert rpe.trans_rmse_m == pytest.approx(0.1) and rpe.trans_mean_m == pytest.approx(0.1)
    assert rpe.rot_rmse_deg == pytest.approx(2.0) and rpe.rot_mean_deg == pytest.approx(2.0)


def test_chained_steps_go_round_a_square_and_back() -> None:
    step = make_transform(rpy_to_matrix(0.0, 0.0, math.pi / 2), [1.0, 0.0, 0.0])
    poses = relative_poses_to_trajectory(np.repeat(step[None], 4, 0))
    assert poses.shape == (5, 4, 4)
    np.testing.assert_allclose(poses[:, :3, 3], [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]],
                               atol=1e-12)
    np.testing.assert_allclose(poses[4], np.eye(4), atol=1e-12)


def test_ate_and_rpe_equal_evo() -> None:
    from evo.core import metrics as evo_metrics   # the dev extra installs evo
    from evo.core.trajectory import PosePath3D

    rng = np.random.default_rng(8)
    gt = random_trajectory(rng, 40)
    noise = make_transform(rpy_to_matrix(*rng.normal(0, 0.02, (3, 40))), rng.normal(0, 0.2, (40, 3)))
    pred = similarity(gt, 1.3, rpy_to_matrix(0.1, -0.2, 0.7), np.array([5.0, -1.0, 0.5])) @ noise

    def evo_ape(align: bool, scale: bool) -> float:
        ref, est = PosePath3D(poses_se3=list(gt)), PosePath3D(poses_se3=list(pred))
        if align or scale:
            est.align(ref, correct_scale=scale)
        ape = evo_metrics.APE(evo_metrics.PoseRelation.translation_part)
        ape.process_data((ref, est))
        return ape.get_statistic(evo_metrics.StatisticsType.rmse)

    def evo_rpe(relation: object, delta: int, statistic: object) -> float:
        rpe = evo_metrics.RPE(relation, delta=delta, delta_unit=evo_metrics.Unit.frames, all_pairs=True)
        rpe.process_data((PosePath3D(poses_se3=list(gt)), PosePath3D(poses_se3=list(pred))))
        return rpe.get_statistic(statistic)

    assert absolute_trajectory_error(pred, gt, "se3") == pytest.approx(evo_ape(True, False), abs=1e-6)
    assert absolute_trajectory_error(pred, gt, "sim3") == pytest.approx(evo_ape(True, True), abs=1e-6)
    assert absolute_trajectory_error(pred, gt, "none") == pytest.approx(evo_ape(False, False), abs=1e-6)
    relation, stats = evo_metrics.PoseRelation, evo_metrics.StatisticsType
    for delta in (1, 3):
        ours = relative_pose_error(pred, gt, delta)
        assert ours.trans_rmse_m == pytest.approx(
            evo_rpe(relation.translation_part, delta, stats.rmse), abs=1e-6)
        assert ours.rot_rmse_deg == pytest.approx(
            evo_rpe(relation.rotation_angle_deg, delta, stats.rmse), abs=1e-6)
        assert ours.trans_mean_m == pytest.approx(
            evo_rpe(relation.translation_part, delta, stats.mean), abs=1e-6)
        assert ours.rot_mean_deg == pytest.approx(
            evo_rpe(relation.rotation_angle_deg, delta, stats.mean), abs=1e-6)


def test_accumulator_sorts_by_stamp_and_halves_merged_equal_all_at_once() -> None:
    rng = np.random.default_rng(9)
    gt = random_trajectory(rng, 12)
    pred = gt @ make_transform(rpy_to_matrix(*rng.normal(0, 0.01, (3, 12))), rng.normal(0, 0.1, (12, 3)))
    whole, first, second = TrajectoryAccumulator(), TrajectoryAccumulator(), TrajectoryAccumulator()
    for k in range(12):
        whole.update(0.1 * k, pred[k], gt[k])
        (second if k < 5 else first).update(0.1 * k, pred[k], gt[k])   # pieces added out of order
    first.merge(second)
    expected = {"ate_m": absolute_trajectory_error(pred, gt, "se3"),
                "ate_sim3_m": absolute_trajectory_error(pred, gt, "sim3"),
                "ate_unaligned_m": absolute_trajectory_error(pred, gt, "none"),
                "rpe_trans_m": relative_pose_error(pred, gt).trans_rmse_m,
                "rpe_rot_deg": relative_pose_error(pred, gt).rot_rmse_deg}
    assert whole.result() == pytest.approx(expected, rel=1e-12)
    assert first.result() == pytest.approx(expected, rel=1e-12)
    assert all(math.isnan(v) for v in TrajectoryAccumulator().result().values())
