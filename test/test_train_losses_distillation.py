"""Distillation: every term is 0 when the student equals the teacher and positive otherwise; the KL
moves the student's logits toward the teacher's; no gradient reaches the teacher."""

from __future__ import annotations

import pytest
import torch

from unified_perception.contract import NUM_CLASSES, THING_CLASS_IDS
from unified_perception.train.geometry import pose_vector_to_matrix
from unified_perception.train.losses.distillation import (DISTILLATION_TERMS, distillation_loss,
                                                          semantic_kl)
from unified_perception.train.model import UnifiedOutput
from unified_perception.train.window_forward import WindowOutput

B, H, W = 2, 8, 12
ALL_ON = {name: 1.0 for name in DISTILLATION_TERMS}
STUFF_ID = next(i for i in range(NUM_CLASSES) if i not in THING_CLASS_IDS)


def _output(seed: int, requires_grad: bool = False) -> WindowOutput:
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    logits = 3 * torch.randn(B, NUM_CLASSES, H, W, generator=g)
    logits[:, THING_CLASS_IDS[0], :, : W // 2] += 20.0                # the left half is a thing
    logits[:, STUFF_ID, :, W // 2:] += 20.0                           # the right half is stuff
    pose = 0.1 * torch.randn(B, 6, generator=g)
    eye = torch.eye(4).expand(B, 4, 4)
    fields = dict(semantic_logits=logits, disparities=tuple(0.01 + r(B, 1, H // 2 ** s, W // 2 ** s)
                                                            for s in range(4)),
                  depth_m=1 + 50 * r(B, 1, H, W), center_heatmap=r(B, 1, H, W),
                  center_offsets=4 * torch.randn(B, 2, H, W, generator=g), pose_vector=pose,
                  motion_prob=r(B, 1, H, W).clamp(0.05, 0.95),
                  scene_flow_m=torch.randn(B, 3, H, W, generator=g))
    T = torch.stack([pose_vector_to_matrix(pose), eye, pose_vector_to_matrix(-pose)], dim=1)
    if requires_grad:
        fields = {k: (tuple(x.requires_grad_(True) for x in v) if isinstance(v, tuple)
                      else v.requires_grad_(True)) for k, v in fields.items()}
    latent = torch.zeros(B, 4)
    return WindowOutput(UnifiedOutput(latent=latent, **fields), T, latent[:, None].expand(B, 3, 4))


def test_every_distillation_term_is_zero_when_the_student_equals_the_teacher() -> None:
    teacher = _output(0)
    for log_depth in (False, True):
        terms = distillation_loss(_output(0), teacher, ALL_ON, temperature=2.0, log_depth=log_depth)
        assert set(terms) == set(DISTILLATION_TERMS)
        for name, value in terms.items():
            assert abs(float(value)) < 1e-5, name


def test_every_distillation_term_is_positive_when_the_student_differs() -> None:
    terms = distillation_loss(_output(1), _output(0), ALL_ON)
    for name, value in terms.items():
        assert float(value) > 1e-4, name


def test_kl_gradient_moves_the_student_logits_toward_the_teacher() -> None:
    teacher = _output(0).current.semantic_logits
    student = _output(1).current.semantic_logits.clone().requires_grad_(True)
    for temperature in (1.0, 4.0):
        student.grad = None
        loss = semantic_kl(student, teacher, temperature)
        loss.backward()
        stepped = (student - 0.5 * student.grad).detach()
        assert float(semantic_kl(stepped, teacher, temperature)) < float(loss.detach())
        distance = lambda s: (s.softmax(1) - teacher.softmax(1)).abs().sum()  # noqa: E731
        assert distance(stepped) < distance(student.detach())


def test_no_gradient_reaches_the_teacher_and_every_student_output_gets_one() -> None:
    teacher, student = _output(0, requires_grad=True), _output(1, requires_grad=True)
    sum(distillation_loss(student.current, teacher.current, ALL_ON).values()).backward()
    for name, value in teacher.current._asdict().items():
        for tensor in (value if isinstance(value, tuple) else (value,)):
            assert tensor is None or tensor.grad is None, name
    for name in ("semantic_logits", "center_heatmap", "center_offsets", "pose_vector", "motion_prob",
                 "scene_flow_m"):
        assert getattr(student.current, name).grad is not None, name


def test_a_multi_backbone_teacher_is_read_member_by_member() -> None:
    full = _output(0)
    cur = full.current
    members = {"depth": UnifiedOutput(latent=cur.latent, disparities=cur.disparities,
                                      depth_m=cur.depth_m),
               "segmentation": UnifiedOutput(latent=cur.latent, semantic_logits=cur.semantic_logits,
                                             center_heatmap=cur.center_heatmap,
                                             center_offsets=cur.center_offsets),
               "motion": WindowOutput(UnifiedOutput(latent=cur.latent, pose_vector=cur.pose_vector,
                                                    motion_prob=cur.motion_prob,
                                                    scene_flow_m=cur.scene_flow_m),
                                      full.T_cam_src_cam_cur, full.latents)}
    student = _output(1)
    by_member = distillation_loss(student, members, ALL_ON)
    merged = distillation_loss(student, full, ALL_ON)
    assert set(by_member) == set(merged)
    for name in merged:
        torch.testing.assert_close(by_member[name], merged[name])


def test_only_weighted_terms_are_computed_and_unknown_names_are_refused() -> None:
    terms = distillation_loss(_output(1), _output(0), {"distill_flow": 1.0, "distill_depth": 0.0})
    assert set(terms) == {"distill_flow"}
    try:
        distillation_loss(_output(1), _output(0), {"distill_flows": 1.0})
    except ValueError as err:
        assert "distill_flows" in str(err)
    else:
        raise AssertionError("an unknown distillation term was accepted")


def test_offsets_are_distilled_on_the_teacher_thing_pixels_only() -> None:
    teacher = _output(0)
    offsets = teacher.current.center_offsets.clone()
    offsets[..., W // 2:] += 5.0                                # differs on the stuff half only
    student = teacher._replace(current=teacher.current._replace(center_offsets=offsets))
    assert float(distillation_loss(student, teacher, {"distill_offset": 1.0})["distill_offset"]) == 0.0
    offsets[..., : W // 2] += 1.0                               # and now on the thing half
    assert float(distillation_loss(student, teacher, {"distill_offset": 1.0})["distill_offset"]) \
        == pytest.approx(2.0)
