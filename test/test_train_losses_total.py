"""compute_losses on a real (tiny) model's window forward: the named terms, the weights, the motion
phase, the balancers, and recipe validation of LossWeights."""

from __future__ import annotations

import pytest
import torch

from loss_helpers import make_batch, textured_images, window_output
from unified_perception.train.geometry import pose_vector_to_matrix
from unified_perception.train.losses import (FixedWeights, LossTerms, LossWeights,
                                             UncertaintyWeighting, build_balancer, compute_losses)
from unified_perception.train.model import build_unified_model
from unified_perception.train.window_forward import window_forward

H, W = 32, 64
SELF_SUPERVISED = {"photometric", "disparity_smoothness"}
MOTION = {"flow_smoothness", "flow_consistency", "motion_sparsity", "mask_smoothness"}
SUPERVISED = {"semantic", "center_heatmap", "center_offset", "depth", "pose_translation",
              "pose_rotation", "scene_flow", "moving_flow", "motion_mask"}


@pytest.fixture(scope="module")
def model():
    net = build_unified_model("resnet18", H, W, preset="light", seed=0)
    return net.train()


def _labelled_batch():
    g = torch.Generator().manual_seed(0)
    b = 2
    pose = pose_vector_to_matrix(torch.tensor([[0.0, 0.01, 0.0, 0.0, 0.0, 0.8]] * b))
    T_src = torch.stack([pose, torch.eye(4).expand(b, 4, 4), torch.linalg.inv(pose)], dim=1)
    things = (torch.rand(b, 1, H, W, generator=g) > 0.7).float()
    return make_batch(
        textured_images(b, 3, H, W), depth_m=1 + 20 * torch.rand(b, 1, H, W, generator=g),
        semantic=torch.randint(0, 5, (b, H, W), generator=g),
        center_heatmap=torch.rand(b, 1, H, W, generator=g),
        center_offsets=torch.randn(b, 2, H, W, generator=g), thing_mask=things,
        motion_mask=things, scene_flow=0.1 * torch.randn(b, 3, H, W, generator=g),
        T_cam_src_cam_cur=T_src)


def test_every_named_term_is_computed_finite_and_reaches_the_heads(model) -> None:
    batch = _labelled_batch()
    model.zero_grad()
    output = window_forward(model, batch.network_images, batch.offsets)
    weights = LossWeights(motion_start_step=0, motion_ramp_steps=300)
    terms = compute_losses(batch, output, weights, step=100)        # motion ramp fully on
    assert isinstance(terms, LossTerms)
    assert set(terms.terms) == SELF_SUPERVISED | MOTION | SUPERVISED
    assert all(torch.isfinite(v) and not v.requires_grad for v in terms.terms.values())
    torch.testing.assert_close(terms.total, sum(terms.weighted.values()))
    assert float(terms.weighted["center_heatmap"].detach() / terms.terms["center_heatmap"]) == \
        pytest.approx(200.0)
    assert terms.automask is not None and terms.automask.shape == (2, 1, H, W)
    terms.total.backward()
    for head in ("depth", "panoptic", "pose", "motion", "encoder"):
        grads = [p.grad for p in getattr(model, head).parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), head


def test_motion_terms_wait_for_their_phase_and_zero_weights_are_not_computed(model) -> None:
    batch = _labelled_batch()
    with torch.no_grad():
        output = window_forward(model, batch.network_images, batch.offsets)
    weights = LossWeights(motion_start_step=1000, motion_ramp_steps=300, semantic=0.0, depth=0.0)
    early = compute_losses(batch, output, weights, step=999)
    assert not set(early.terms) & (MOTION | {"semantic", "depth"})
    half = compute_losses(batch, output, weights, step=1050)          # ramp 3 * 50 / 300 = 0.5
    assert MOTION <= set(half.terms)
    assert float(half.weighted["flow_consistency"]) == pytest.approx(
        0.5 * 5.0 * float(half.terms["flow_consistency"]), rel=1e-5)


def test_unlabelled_batches_give_zero_supervised_terms(model) -> None:
    batch = make_batch(textured_images(2, 3, H, W))
    output = window_forward(model, batch.network_images, batch.offsets)
    terms = compute_losses(batch, output, LossWeights(), step=0)
    for name in SUPERVISED:
        assert float(terms.terms[name]) == 0.0, name
    terms.total.backward()                                  # still one connected graph


def test_distillation_terms_join_when_a_teacher_is_given(model) -> None:
    batch = _labelled_batch()
    with torch.no_grad():
        teacher = window_forward(model, batch.network_images, batch.offsets)
    student = window_forward(model, batch.network_images, batch.offsets)
    terms = compute_losses(batch, student, LossWeights(), step=0, teacher=teacher)
    distilled = {n for n in terms.terms if n.startswith("distill_")}
    assert distilled == {"distill_semantic", "distill_depth", "distill_center", "distill_offset",
                         "distill_pose", "distill_motion", "distill_flow"}
    for name in distilled:                           # the student is the teacher here
        assert abs(float(terms.terms[name])) < 1e-4, name


def test_uncertainty_weighting_log_variances_receive_gradients(model) -> None:
    batch = _labelled_batch()
    with torch.no_grad():
        output = window_forward(model, batch.network_images, batch.offsets)
    terms = compute_losses(batch, output, LossWeights(), step=0)
    balancer = build_balancer("uncertainty", LossWeights())
    total, weighted = balancer(terms)
    total.backward()
    grad = balancer.log_variances.grad
    assert grad is not None and (grad != 0).all()
    # exp(-s) L + s with s = 0: each task term equals its fixed-weighted value at the start
    torch.testing.assert_close(weighted["depth"], terms.weighted["depth"])


def test_uncertainty_weighting_lowers_the_weight_of_a_task_whose_loss_stays_large() -> None:
    balancer = UncertaintyWeighting(["big", "small"])
    optimizer = torch.optim.SGD(balancer.parameters(), lr=0.1)
    for _ in range(50):
        optimizer.zero_grad()
        total, _ = balancer({"big": torch.tensor(10.0), "small": torch.tensor(0.1),
                             "regulariser": torch.tensor(1.0)})
        total.backward()
        optimizer.step()
    s_big, s_small = balancer.log_variance("big"), balancer.log_variance("small")
    assert float(s_big.detach()) > 0 > float(s_small.detach())


def test_fixed_weights_refuse_a_term_without_a_weight() -> None:
    total, weighted = FixedWeights({"a": 2.0})({"a": torch.tensor(3.0)})
    assert float(total) == 6.0 and float(weighted["a"]) == 6.0
    with pytest.raises(KeyError, match="'b'"):
        FixedWeights({"a": 2.0})({"a": torch.tensor(1.0), "b": torch.tensor(1.0)})


def test_loss_weights_default_to_the_paper_and_refuse_bad_values() -> None:
    w = LossWeights()
    assert (w.photometric, w.disparity_smoothness, w.flow_smoothness, w.flow_consistency,
            w.motion_sparsity, w.mask_smoothness) == (1.0, 1e-3, 1e-3, 5.0, 0.04, 0.1)
    assert (w.scales, w.motion_start_step, w.motion_ramp_steps) == (4, 8000, 8000)
    with pytest.raises(ValueError, match="depth_loss"):
        LossWeights(depth_loss="l2")
    with pytest.raises(ValueError, match=">= 0"):
        LossWeights(semantic=-1.0)


def test_half_precision_outputs_under_autocast_give_the_float32_losses() -> None:
    """Mixed precision hands the losses bfloat16 outputs; they are computed in float32 (in bfloat16,
    pixel coordinates near 512 would be off by up to 2 px)."""
    h, w = 16, 512
    batch = make_batch(textured_images(1, 3, h, w))
    disp = 0.05 + 0.3 * torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(0))
    pose = torch.tensor([[0.0, 0.02, 0.0, 0.1, 0.0, 0.5]])
    T = torch.stack([pose_vector_to_matrix(pose), torch.eye(4)[None],
                     pose_vector_to_matrix(-pose)], dim=1)
    weights = LossWeights(automask=False, scales=1)
    full = compute_losses(batch, window_output((disp.bfloat16().float(),), T.bfloat16().float()),
                          weights, step=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = compute_losses(batch, window_output((disp.bfloat16(),), T.bfloat16()), weights, step=0)
    assert half.total.dtype == torch.float32
    for name, value in full.terms.items():
        assert float(half.terms[name]) == pytest.approx(float(value), rel=1e-3), name
