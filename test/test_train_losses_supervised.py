"""Supervised losses: zero at the ground truth, one gradient step moves a perturbed prediction back
toward its target, only samples with the field count, and 0 (still on the graph) without any."""

from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch import Tensor

from unified_perception.contract import IGNORE_ID
from unified_perception.train.geometry import pose_vector_to_matrix
from unified_perception.train.losses.total import LossWeights
from unified_perception.train.losses.supervised import (
    ROTATION_EMPHASIS_SCALE_RAD, center_heatmap_loss, center_offset_loss, depth_log_l1, depth_silog,
    motion_mask_bce, moving_flow_epe, relative_pose_loss, rotation_angle, scene_flow_epe,
    semantic_cross_entropy)

B, H, W, C = 2, 8, 12, 5
ALL = torch.ones(B, dtype=torch.bool)


def _semantic_target() -> Tensor:
    target = torch.randint(0, C, (B, H, W), generator=torch.Generator().manual_seed(0))
    target[:, :2] = IGNORE_ID
    return target


def _one_hot_logits(target: Tensor, scale: float = 30.0) -> Tensor:
    return scale * torch.nn.functional.one_hot(target.clamp_max(C - 1), C).permute(0, 3, 1, 2).float()


def _pose_truth() -> Tensor:
    vectors = torch.tensor([[0.02, -0.05, 0.01, 0.3, -0.1, 1.2], [0.0, 0.1, 0.0, -0.2, 0.05, 0.9]])
    eye = torch.eye(4).expand(B, 4, 4)
    return torch.stack([pose_vector_to_matrix(vectors), eye, pose_vector_to_matrix(-vectors)], dim=1)


def _perturbed_pose(truth: Tensor) -> Tensor:
    delta = pose_vector_to_matrix(torch.tensor([[0.05, 0.02, -0.03, 0.2, 0.1, -0.1]] * B))
    return torch.stack([truth[:, 0] @ delta, truth[:, 1], truth[:, 2] @ delta], dim=1)


# (name, loss of a prediction, ground truth, perturbed prediction, learning rate)
Case = tuple[str, Callable[[Tensor], Tensor], Tensor, Tensor, float]


def _cases() -> list[Case]:
    g = torch.Generator().manual_seed(1)
    target = _semantic_target()
    heat = torch.rand(B, 1, H, W, generator=g)
    offsets = 5 * torch.randn(B, 2, H, W, generator=g)
    things = (torch.rand(B, 1, H, W, generator=g) > 0.5).float()
    depth = 1 + 30 * torch.rand(B, 1, H, W, generator=g)
    depth[:, :, 0] = 0.0                                            # no ground truth on the top row
    flow = torch.randn(B, 3, H, W, generator=g)
    motion = (torch.rand(B, 1, H, W, generator=g) > 0.7).float()
    pose = _pose_truth()
    noise = lambda t, s: t + s * torch.randn(t.shape, generator=g)  # noqa: E731
    return [
        ("semantic", lambda p: semantic_cross_entropy(p, target, ALL), _one_hot_logits(target),
         noise(torch.zeros(B, C, H, W), 1.0), 10.0),
        ("semantic_top_k", lambda p: semantic_cross_entropy(p, target, ALL, 0.2),
         _one_hot_logits(target), noise(torch.zeros(B, C, H, W), 1.0), 10.0),
        ("center_heatmap", lambda p: center_heatmap_loss(p, heat, ALL), heat, noise(heat, 0.3), 0.2),
        ("center_offset", lambda p: center_offset_loss(p, offsets, things, ALL), offsets,
         noise(offsets, 2.0), 10.0),
        ("depth_log_l1", lambda p: depth_log_l1(p, depth, ALL), depth, depth * 1.5, 50.0),
        ("depth_silog", lambda p: depth_silog(p, depth, ALL), depth,
         depth * torch.exp(0.3 * torch.randn(depth.shape, generator=g)), 20.0),
        ("pose_translation", lambda p: relative_pose_loss(p, pose, ALL, (0, 2)).translation_m, pose,
         _perturbed_pose(pose), 0.05),
        ("pose_rotation", lambda p: relative_pose_loss(p, pose, ALL, (0, 2)).rotation_rad, pose,
         _perturbed_pose(pose), 0.01),
        ("scene_flow", lambda p: scene_flow_epe(p, flow, ALL, torch.ones(B, dtype=torch.long)), flow,
         noise(flow, 0.5), 10.0),
        ("moving_flow", lambda p: moving_flow_epe(p, flow, motion, ALL,
                                                  torch.ones(B, dtype=torch.long)), flow,
         noise(flow, 0.5), 10.0),
        ("motion_mask", lambda p: motion_mask_bce(p, motion, ALL), motion,
         torch.full_like(motion, 0.5), 0.05),
    ]


def test_moving_flow_counts_only_moving_pixels_and_averages_over_them() -> None:
    """The independent flow's EPE over the ground-truth moving pixels: whatever the flow does on
    static pixels costs nothing, and one moving pixel off by 2 m among 3 costs 2/3 m."""
    flow = torch.zeros(B, 3, H, W)
    moving = torch.zeros(B, 1, H, W)
    moving[0, 0, 1, 1:4] = 1.0
    prediction = flow + 7.0 * (1.0 - moving)               # wrong everywhere static
    one_gap = torch.ones(B, dtype=torch.long)
    assert float(moving_flow_epe(prediction, flow, moving, ALL, one_gap)) == 0.0
    prediction[0, 2, 1, 1] = 2.0
    assert float(moving_flow_epe(prediction, flow, moving, ALL, one_gap)) == pytest.approx(2 / 3)
    # frame gap 2: the ground truth is for consecutive frames, so the sample does not count
    assert float(moving_flow_epe(prediction, flow, moving, ALL, 2 * one_gap)) == 0.0


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c[0])
def test_supervised_loss_is_zero_at_the_ground_truth(case: Case) -> None:
    name, loss, truth, _, _ = case
    assert abs(float(loss(truth))) < 1e-5, name


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c[0])
def test_one_gradient_step_moves_a_perturbed_prediction_toward_its_target(case: Case) -> None:
    name, loss, truth, perturbed, lr = case
    prediction = perturbed.clone().requires_grad_(True)
    before = loss(prediction)
    before.backward()
    assert prediction.grad is not None and torch.isfinite(prediction.grad).all()
    stepped = (prediction - lr * prediction.grad).detach()
    assert float(loss(stepped)) < float(before.detach()), name
    if name not in ("semantic", "semantic_top_k", "pose_translation", "pose_rotation"):
        # the step also brings the prediction itself closer to the ground truth
        assert (stepped - truth).abs().sum() < (perturbed - truth).abs().sum(), name


def test_losses_count_only_samples_that_have_the_field() -> None:
    target = _semantic_target()
    wrong = torch.zeros(B, C, H, W)
    only_first = torch.tensor([True, False])
    right_second = wrong.clone()
    right_second[1] = _one_hot_logits(target)[1]
    # the second sample is wrong too, but has no label: same loss as with only the first sample
    torch.testing.assert_close(semantic_cross_entropy(wrong, target, only_first),
                               semantic_cross_entropy(right_second, target, only_first))
    flow = torch.randn(B, 3, H, W)
    gap = torch.tensor([1, 2])
    assert float(scene_flow_epe(flow + 1.0, flow, ALL, gap)) == pytest.approx(3 ** 0.5, rel=1e-5)
    nan_pose = _pose_truth()
    nan_pose[1] = float("nan")                                       # odometry missing: skipped
    loss = relative_pose_loss(_perturbed_pose(_pose_truth()), nan_pose, ALL, (0, 2))
    assert torch.isfinite(loss.translation_m) and torch.isfinite(loss.rotation_rad)


def test_losses_are_zero_and_connected_without_any_labelled_sample() -> None:
    none = torch.zeros(B, dtype=torch.bool)
    logits = torch.randn(B, C, H, W, requires_grad=True)
    depth = torch.rand(B, 1, H, W, requires_grad=True)
    prob = torch.rand(B, 1, H, W).clamp(0.1, 0.9).requires_grad_(True)
    pose = _perturbed_pose(_pose_truth()).requires_grad_(True)
    losses = [semantic_cross_entropy(logits, _semantic_target(), none),
              semantic_cross_entropy(logits, _semantic_target(), none, 0.2),
              depth_silog(depth + 1, torch.rand(B, 1, H, W) + 1, none),
              depth_log_l1(depth + 1, torch.rand(B, 1, H, W) + 1, none),
              motion_mask_bce(prob, torch.ones_like(prob), none),
              *relative_pose_loss(pose, _pose_truth(), none, (0, 2))]
    for loss in losses:
        assert float(loss.detach()) == 0.0 and loss.requires_grad
    sum(losses).backward()
    assert logits.grad is not None and depth.grad is not None and pose.grad is not None


def test_semantic_cross_entropy_ignores_label_255_and_top_k_averages_the_hardest_pixels() -> None:
    target = torch.full((1, H, W), IGNORE_ID)
    target[0, 0, 0], target[0, 0, 1] = 1, 2
    logits = torch.zeros(1, C, H, W)
    logits[0, 1, 0, 0] = 10.0                    # pixel (0, 0) right, pixel (0, 1) uniform
    has = torch.ones(1, dtype=torch.bool)
    uniform = float(torch.log(torch.tensor(float(C))))
    right = float(torch.nn.functional.cross_entropy(logits[:, :, 0, 0], torch.tensor([1])))
    assert float(semantic_cross_entropy(logits, target, has)) == pytest.approx((uniform + right) / 2,
                                                                               rel=1e-5)
    k = 1 / (H * W)                              # top-1 pixel: the hardest labelled one
    assert float(semantic_cross_entropy(logits, target, has, k)) == pytest.approx(uniform, rel=1e-5)


def test_silog_forgives_a_global_scale_more_than_log_l1() -> None:
    depth = 1 + 30 * torch.rand(B, 1, H, W)
    scaled = depth * 2.0
    assert float(depth_silog(scaled, depth, ALL, variance_focus=1.0)) == pytest.approx(0.0, abs=1e-5)
    assert float(depth_silog(scaled, depth, ALL)) < float(depth_log_l1(scaled, depth, ALL)) ** 2


def test_rotation_emphasis_weighs_each_pair_by_its_ground_truth_turn() -> None:
    truth = _pose_truth()
    delta = pose_vector_to_matrix(torch.tensor([[0.01, -0.004, 0.0, 0.0, 0.1, 0.0],
                                                [0.05, 0.02, -0.03, 0.2, 0.1, -0.1]]))
    pred = truth @ delta[:, None]          # the sample with the larger turn has the larger error
    plain = relative_pose_loss(pred, truth, ALL, (0, 2))
    emphasised = relative_pose_loss(pred, truth, ALL, (0, 2), rotation_emphasis=2.0)
    # per-pair errors (the plain loss of each (sample, source) alone) and ground-truth turns
    errors, turns = [], []
    for b in range(B):
        for s in (0, 2):
            one = torch.zeros(B, dtype=torch.bool)
            one[b] = True
            errors.append(float(relative_pose_loss(pred, truth, one, (s,)).rotation_rad))
            turns.append(float(rotation_angle(truth[b, s, :3, :3])))
    errors_t, turns_t = torch.tensor(errors), torch.tensor(turns)
    weights = 1.0 + 2.0 * turns_t / ROTATION_EMPHASIS_SCALE_RAD
    assert float(plain.rotation_rad) == pytest.approx(float(errors_t.mean()), rel=1e-5)
    assert float(emphasised.rotation_rad) > 1.05 * float(plain.rotation_rad)  # the turn errs more
    assert float(emphasised.rotation_rad) == pytest.approx(
        float((weights * errors_t).sum() / weights.sum()), rel=1e-5)
    assert float(emphasised.translation_m) == pytest.approx(float(plain.translation_m))
    with pytest.raises(ValueError, match="pose_rotation_emphasis"):
        LossWeights(pose_rotation_emphasis=-1.0)
