"""Edge-aware smoothness and the motion terms: what they are zero on, what they penalise, the ramp."""

from __future__ import annotations

import pytest
import torch

from loss_helpers import pinhole, textured_images
from unified_perception.train.geometry import BackprojectDepth, pose_vector_to_matrix, rigid_flow
from unified_perception.train.losses.motion import (complete_flow, flow_consistency_loss,
                                                    mask_smoothness_loss, motion_ramp,
                                                    motion_sparsity_loss, static_pixels)
from unified_perception.train.losses.smoothness import (disparity_smoothness, edge_aware_smoothness,
                                                        multi_scale_disparity_smoothness)

H, W = 16, 24


def test_smoothness_is_zero_on_constant_disparity_at_every_scale() -> None:
    image = textured_images(2, 1, H, W)[:, 0]
    disps = [torch.full((2, 1, H // 2 ** s, W // 2 ** s), 0.3) for s in range(4)]
    assert float(multi_scale_disparity_smoothness(disps, image)) == 0.0
    ramp = torch.linspace(0.1, 0.9, W).expand(2, 1, H, W)
    assert float(disparity_smoothness(ramp, image)) > 0.0


def test_disparity_smoothness_ignores_the_scene_scale() -> None:
    image = textured_images(1, 1, H, W)[:, 0]
    disp = 0.05 + 0.5 * torch.rand(1, 1, H, W)
    torch.testing.assert_close(disparity_smoothness(disp, image), disparity_smoothness(3 * disp, image))


def test_edge_aware_smoothness_forgives_a_step_on_an_image_edge() -> None:
    step = torch.zeros(1, 1, H, W)
    step[..., W // 2:] = 1.0
    flat_image = torch.full((1, 3, H, W), 0.5)
    edge_image = step.expand(1, 3, H, W)
    assert float(edge_aware_smoothness(step, edge_image)) < 0.5 * float(
        edge_aware_smoothness(step, flat_image))


def test_motion_ramp_is_zero_before_the_phase_then_linear_to_one_at_a_third_of_the_ramp() -> None:
    assert motion_ramp(0, 8000, 8000) == 0.0
    assert motion_ramp(8000, 8000, 8000) == 0.0
    assert motion_ramp(8000 + 8000 // 6, 8000, 8000) == pytest.approx(0.5, abs=1e-3)
    assert motion_ramp(8000 + 8000 // 3 + 1, 8000, 8000) == 1.0
    assert motion_ramp(10 ** 6, 8000, 8000) == 1.0


def test_complete_flow_is_the_rigid_flow_minus_the_rotated_scene_flow() -> None:
    g = torch.Generator().manual_seed(0)
    depth = 2 + 10 * torch.rand(1, 1, H, W, generator=g)
    K = pinhole(1, H, W)
    inv_K = torch.linalg.inv(K)
    T = pose_vector_to_matrix(torch.tensor([[0.01, 0.05, -0.02, 0.1, 0.0, -0.9]]))
    scene = 0.3 * torch.randn(1, 3, H, W, generator=g)
    rigid = rigid_flow(depth, T, inv_K, BackprojectDepth(H, W))
    torch.testing.assert_close(complete_flow(depth, torch.zeros_like(scene), T, inv_K), rigid)
    rotated = (T[:, :3, :3] @ scene.flatten(2)).reshape(1, 3, H, W)
    torch.testing.assert_close(complete_flow(depth, scene, T, inv_K), rigid - rotated,
                               atol=1e-5, rtol=1e-5)


def test_flow_consistency_penalises_independent_flow_on_static_near_pixels_only() -> None:
    flow = torch.zeros(1, 3, H, W)
    flow[..., :H // 2, :] = 0.5                               # the top half moves
    disp = torch.full((1, 1, H, W), 0.2)
    static = torch.zeros(1, 1, H, W)
    moving_top = static.clone()
    moving_top[..., :H // 2, :] = 1.0
    assert float(flow_consistency_loss(torch.zeros_like(flow), static, disp)) == 0.0
    assert float(flow_consistency_loss(flow, static, disp)) == pytest.approx(0.75, rel=1e-5)
    assert float(flow_consistency_loss(flow, moving_top, disp)) == 0.0   # the mask says it moves
    far_top = disp.clone()
    far_top[..., :H // 2, :] = 0.02                           # far pixels (disparity <= 0.03) skipped
    assert float(flow_consistency_loss(flow, static, far_top)) == 0.0


def test_motion_sparsity_pushes_the_mask_toward_zero_on_static_pixels() -> None:
    rigid = torch.rand(1, 1, H, W)
    complete = rigid.clone()
    complete[..., :H // 2, :] -= 0.05                         # the top half needs its own motion
    static = static_pixels(rigid, complete)
    assert not static[..., :H // 2, :].any() and static[..., H // 2:, :].all()
    prob = torch.full((1, 1, H, W), 0.5, requires_grad=True)
    loss = motion_sparsity_loss(prob, static)
    assert float(loss.detach()) == pytest.approx(3 * float(torch.log(torch.tensor(2.0))), rel=1e-5)
    loss.backward()
    assert (prob.grad[..., H // 2:, :] > 0).all() and (prob.grad[..., :H // 2, :] == 0).all()


def test_mask_smoothness_is_zero_on_a_constant_mask() -> None:
    image = textured_images(1, 1, H, W)[:, 0]
    assert float(mask_smoothness_loss(torch.full((1, 1, H, W), 0.3), image)) == 0.0
    assert float(mask_smoothness_loss(torch.rand(1, 1, H, W), image)) > 0.0
