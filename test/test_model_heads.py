"""The heads and geometry layers behave as specified (shapes, units, conventions)."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
import torch

from unified_perception.contract import (PANOPTIC_LABEL_DIVISOR, TensorInfo, Task, check_model_io,
                                         expected_outputs)
from unified_perception.train.export import export_model
from unified_perception.train.geometry import (BackprojectDepth, Project3D, intrinsics_matrix,
                                               invert_rigid, matrix_to_pose_vector,
                                               points_in_previous_camera, pose_vector_to_matrix,
                                               rigid_flow)
from unified_perception.train.heads.depth import AttentionGate, disparity_to_depth
from unified_perception.train.heads.layers import upsample_by
from unified_perception.train.heads.motion import _Level
from unified_perception.train.heads.panoptic import ASPP
from unified_perception.train.heads.panoptic_grouping import PanopticGrouping
from unified_perception.train.heads.steering import AttentionPoolSteering
from unified_perception.train.model import build_single_task_model, build_unified_model
from unified_perception.train.multi_backbone_teacher import TEACHER_GROUPS, build_teacher
from unified_perception.train.normalization import IMAGENET_MEAN, IMAGENET_STD, ImageNormalization


def test_pose_vector_and_matrix_round_trip_and_inverse() -> None:
    torch.manual_seed(0)
    pose = torch.cat([torch.randn(5, 3) * 0.5, torch.randn(5, 3)], dim=1)
    T = pose_vector_to_matrix(pose)
    assert torch.allclose(T[:, :3, :3] @ T[:, :3, :3].transpose(1, 2), torch.eye(3).expand(5, 3, 3),
                          atol=1e-5)
    assert torch.allclose(matrix_to_pose_vector(T), pose, atol=1e-4)
    assert torch.allclose(invert_rigid(T) @ T, torch.eye(4).expand(5, 4, 4), atol=1e-5)
    quarter_turn_about_y = pose_vector_to_matrix(torch.tensor([[0.0, math.pi / 2, 0, 0, 0, 0]]))
    assert torch.allclose(quarter_turn_about_y[0, :3, :3] @ torch.tensor([0.0, 0.0, 1.0]),
                          torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    # Rodrigues = the matrix exponential of the rotation vector's cross-product matrix.
    x, y, z = pose[:, 0], pose[:, 1], pose[:, 2]
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=1).reshape(5, 3, 3)
    assert torch.allclose(T[:, :3, :3], torch.linalg.matrix_exp(skew), atol=1e-5)


def test_backprojected_points_project_back_to_their_pixels_and_static_flow_is_rigid() -> None:
    h, w = 8, 12
    K = intrinsics_matrix((0.58, 1.92, 0.5, 0.5), h, w)
    depth = torch.rand(1, 1, h, w) * 20 + 1
    points = BackprojectDepth(h, w)(depth, torch.linalg.inv(K))
    grid, z = Project3D(h, w)(points, K, torch.eye(4)[None])
    xs = (torch.arange(w) + 0.5) / w * 2 - 1
    assert torch.allclose(grid[0, 3, :, 0], xs, atol=1e-5)
    assert torch.allclose(z, depth, atol=1e-4)
    T = pose_vector_to_matrix(torch.tensor([[0.01, 0.02, 0.0, 0.1, 0.0, 1.5]]))
    flow = rigid_flow(depth, T, torch.linalg.inv(K), BackprojectDepth(h, w))
    prev = points_in_previous_camera(depth, torch.zeros(1, 3, h, w), T, torch.linalg.inv(K),
                                     BackprojectDepth(h, w))
    assert torch.allclose(prev - points, flow.flatten(2), atol=1e-4)


def test_disparity_maps_onto_the_depth_range() -> None:
    depth = disparity_to_depth(torch.tensor([0.01, 1.0, 0.5]), 0.1, 100.0)
    assert depth[0].item() == pytest.approx(100.0, rel=1e-5)
    assert depth[1].item() == pytest.approx(0.1, rel=1e-5)
    assert 0.1 < depth[2].item() < 100.0


def test_input_normalization_is_the_imagenet_formula() -> None:
    image = torch.randint(0, 256, (2, 8, 12, 3), dtype=torch.uint8)
    unit = image.permute(0, 3, 1, 2).to(torch.float32) / 255.0
    mean, std = (torch.tensor(v).reshape(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
    expected = (unit - mean) / std
    normalize = ImageNormalization().train()          # a fixed map in training mode too
    torch.testing.assert_close(normalize(image), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(normalize(unit), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [(3, 10), (6, 20), (12, 40)])
def test_aspp_is_its_branches_and_the_broadcast_global_mean(size: tuple[int, int]) -> None:
    """The reference applies every dilated 3x3 branch whole; the ASPP drops the kernel rows /
    columns that only read padding on small maps (3 rows: all of rates 3, 6, 9) to the same result."""
    torch.manual_seed(0)
    aspp = ASPP(8, 16).eval()
    x = torch.randn(2, 8, *size)
    pooled = aspp.pool(x.mean(dim=(2, 3), keepdim=True)).expand(-1, -1, *size)
    expected = aspp.project(torch.cat([b(x) for b in aspp.branches] + [pooled], dim=1))
    torch.testing.assert_close(aspp(x, size), expected)


def test_attention_gate_weights_each_skip_channel_by_one_attention_map() -> None:
    torch.manual_seed(0)
    gate = AttentionGate(16, 4)
    coarse, skip = torch.randn(2, 16, 6, 20), torch.randn(2, 16, 6, 20)
    attention = torch.sigmoid(gate.psi(torch.relu(gate.gate(coarse) + gate.skip(skip))))  # [N, 1, h, w]
    torch.testing.assert_close(gate(coarse, skip), skip * attention)


def test_motion_level_is_one_convolution_of_the_field_and_features_stacked() -> None:
    """The level computes conv_a's field and feature parts apart (for the blocked layout); the
    result is conv_a of the concatenation, as the release writes it."""
    torch.manual_seed(0)
    level = _Level(32, 16, 3)
    field, features = torch.randn(2, 3, 3, 5), torch.randn(2, 32, 6, 10)
    up = upsample_by(field, 2)
    a = torch.relu(level.conv_a(torch.cat([up, features], dim=1)))
    b = torch.relu(level.conv_b(a))
    expected = level.out(torch.cat([a, b], dim=1)) + up
    torch.testing.assert_close(level(field, features, (2, 2)), expected)


def test_narrow_stride4_depth_and_squeezed_motion_pairs() -> None:
    """``depth_stride4_width`` narrows only the depth decoder's stride-4 level;
    ``motion_pair_width`` squeezes only the pairs wider than it (resnet18: 1024 and 512 channels at
    strides 32 and 16 for 256); every output keeps its shape."""
    model = build_unified_model("resnet18", 64, 96, seed=0, preset="car", depth_stride4_width=32,
                                motion_pair_width=256)
    depth = model.depth
    assert [fuse[1][0].out_channels for fuse in depth.fuse] == [32, 128, 128]
    assert depth.predict[0].conv.in_channels == 32 and depth.gates[0].gate.in_channels == 128
    for decoder in (model.motion.mask, model.motion.flow):
        assert [None if lv.squeeze is None else (lv.squeeze[0].in_channels, lv.squeeze[0].out_channels)
                for lv in decoder.levels] == [(1024, 256), (512, 256), None, None]
    reference = build_unified_model("resnet18", 64, 96, seed=0, preset="car").eval()
    model.eval()
    images = torch.rand(2, 2, 3, 64, 96)
    with torch.no_grad():
        out, _ = model(images[0])
        out, _ = model(images[1], _)
        ref, _ = reference(images[0])
        ref, _ = reference(images[1], _)
    for name in ("depth_m", "motion_prob", "independent_flow_m", "semantic", "panoptic"):
        assert getattr(out, name).shape == getattr(ref, name).shape, name


def test_grouping_labels_at_stride_two_spread_over_two_by_two_pixels() -> None:
    h, w = 16, 32
    torch.manual_seed(0)
    half = torch.randn(1, 19, h // 2, w // 2)
    grouping = PanopticGrouping((h, w), top_k=4, vote_stride=4, label_stride=2)
    labels = grouping.semantic_labels(half)
    expected = half.argmax(dim=1).repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    assert labels.dtype == torch.int32 and torch.equal(labels, expected.to(torch.int32))
    heat = torch.full((1, 1, h // 4, w // 4), -1.0)
    out = grouping(half, heat, torch.zeros(1, 2, h // 4, w // 4))
    assert torch.equal(out.semantic, labels)
    assert torch.equal(out.panoptic, labels * PANOPTIC_LABEL_DIVISOR)       # no centres: all stuff
    with pytest.raises(ValueError, match="label stride"):
        PanopticGrouping((h, w), label_stride=4)


@pytest.mark.parametrize("things", [(11, 12, 13, 14, 15, 16, 17, 18), (2, 5, 18)])
def test_thing_pixels_are_the_thing_classes(things: tuple[int, ...]) -> None:
    grouping = PanopticGrouping((8, 8), thing_class_ids=things)
    assert grouping.first_thing == (11 if len(things) == 8 else None)   # a comparison, or a lookup
    classes = torch.arange(19, dtype=torch.int32).reshape(1, 19)
    assert grouping.is_thing_pixel(classes)[0].nonzero()[:, 0].tolist() == list(things)


def test_grouping_assigns_thing_pixels_to_the_nearest_voted_center() -> None:
    h, w = 16, 32
    car, road = 13, 0
    logits = torch.zeros(1, 19, h, w)
    logits[0, road] = 1.0
    logits[0, car, :, 4:28] = 2.0                     # a band of car pixels, road at the sides
    heat = torch.full((1, 1, h // 4, w // 4), -1.0)
    heat[0, 0, 1, 1] = 0.9                            # center at pixel (5.5, 5.5)
    heat[0, 0, 2, 6] = 0.8                            # center at pixel (9.5, 25.5)
    offsets = torch.zeros(1, 2, h, w)
    offsets[0, 1, :, :16] = 5.5 - torch.arange(16.0)  # left half votes for x = 5.5
    offsets[0, 1, :, 16:] = 25.5 - torch.arange(16.0, 32.0)
    out = PanopticGrouping((h, w), top_k=4)(logits, heat, offsets)
    inst = out.instances[0]
    assert set(inst[:, 4:16].unique().tolist()) == {1}      # stronger center = id 1
    assert set(inst[:, 16:28].unique().tolist()) == {2}
    assert inst[:, :4].eq(0).all() and inst[:, 28:].eq(0).all()
    assert out.panoptic[0, 0, 10].item() == car * PANOPTIC_LABEL_DIVISOR + 1
    assert out.panoptic[0, 0, 20].item() == car * PANOPTIC_LABEL_DIVISOR + 2
    assert out.panoptic[0, 0, 0].item() == road * PANOPTIC_LABEL_DIVISOR
    no_centers = PanopticGrouping((h, w), top_k=4)(logits, heat - 5.0, offsets)
    assert no_centers.instances.eq(0).all()
    # One vote per stride-4 cell, from the cell centre (4 j + 1.5) with the stride-4 offsets: the
    # same scene (its borders lie on the 4-pixel grid) groups the same.
    cell_x = 4 * torch.arange(w // 4) + 1.5
    offsets_s4 = torch.zeros(1, 2, h // 4, w // 4)
    offsets_s4[0, 1] = torch.where(cell_x < 16, 5.5, 25.5) - cell_x
    cells = PanopticGrouping((h, w), top_k=4, vote_stride=4)(logits, heat, offsets_s4)
    for name in ("semantic", "instances", "panoptic"):
        assert torch.equal(getattr(cells, name), getattr(out, name)), name
    alone = logits.clone()
    alone[0, car, :, 4:28] = 0.0
    alone[0, car, 5, 9] = 2.0              # a thing pixel off its cell's sampled pixel (6, 10)
    single = PanopticGrouping((h, w), top_k=4, vote_stride=4)(alone, heat, offsets_s4)
    assert single.instances[0, 5, 9].item() == 1
    assert single.panoptic[0, 5, 9].item() == car * PANOPTIC_LABEL_DIVISOR + 1  # its own class
    assert PanopticGrouping((h, w), top_k=4, vote_stride=4)(
        logits, heat - 5.0, offsets_s4).instances.eq(0).all()


def test_steering_ignores_masked_window_slots() -> None:
    torch.manual_seed(0)
    head = AttentionPoolSteering(dim=32, window=4, heads=4, hidden=16).eval()
    window = torch.randn(1, 4, 32)
    mask = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    other = window.clone()
    other[:, :2] = torch.randn(1, 2, 32) * 10
    assert torch.allclose(head(window, mask), head(other, mask), atol=1e-6)
    assert not torch.allclose(head(window, torch.ones(1, 4)), head(other, torch.ones(1, 4)))


def test_model_runs_encoder_once_and_flags_the_first_frame() -> None:
    model = build_unified_model("resnet18", 64, 96, seed=0, preset="light").eval()
    calls = []
    model.encoder.register_forward_hook(lambda *_: calls.append(1))
    image = torch.randint(0, 256, (2, 64, 96, 3), dtype=torch.uint8)
    with torch.no_grad():
        first, state = model(image)
        second, _ = model(image, state)
    assert len(calls) == 2
    assert first.pair_valid.tolist() == [False, False] and second.pair_valid.tolist() == [True, True]
    assert torch.equal(first.T_cam_prev_cam_cur, torch.eye(4).expand(2, 4, 4))
    assert first.scene_flow_m.eq(0).all() and first.motion_prob.eq(0).all()
    assert ((second.depth_m >= 0.1) & (second.depth_m <= 100.0)).all()
    assert torch.allclose(second.scene_flow_m, second.independent_flow_m * second.motion_prob)
    assert state.latent_mask.tolist() == [[0.0] * 15 + [1.0]] * 2


@pytest.mark.parametrize("preset, coarser", [
    ("paper", [(32, 48), (16, 24), (8, 12)]),      # predicted at strides 1, 2, 4, 8
    ("light", [(8, 12), (4, 6), (2, 3)])])         # predicted at strides 4, 8, 16, 32
def test_training_mode_gives_four_disparity_scales(preset: str, coarser: list) -> None:
    """The finest disparity is at the input size (upsampled in the graph where the decoder
    predicts at a coarser stride); the other three at the decoder's next coarser strides."""
    model = build_unified_model("resnet18", 64, 96, tasks=[Task.DEPTH], seed=0, preset=preset)
    out, _ = model(torch.rand(1, 3, 64, 96))
    assert [tuple(d.shape[2:]) for d in out.disparities] == [(64, 96)] + coarser
    assert all(((d >= 0.01 - 1e-6) & (d <= 1 + 1e-6)).all() for d in out.disparities)


def test_teacher_is_dedicated_models_on_their_own_backbones() -> None:
    teacher = build_teacher("resnet18", 64, 96, seed=0, preset="light")
    assert set(teacher.members) == set(TEACHER_GROUPS)
    encoders = [id(m.encoder) for m in teacher.members.values()]
    assert len(set(encoders)) == len(encoders)
    assert teacher.members["depth"].panoptic is None and teacher.members["depth"].pose is None
    outs, states = teacher(torch.rand(1, 3, 64, 96))
    assert outs["motion"].motion_prob is not None and outs["depth"].depth_m is not None


def test_a_single_task_model_exports_only_its_outputs(tmp_path) -> None:
    model = build_single_task_model(Task.POSE, "resnet18", 64, 96, seed=0, preset="light")
    path = export_model(model, tmp_path / "pose.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = check_model_io([TensorInfo(i.name, i.type, tuple(i.shape)) for i in session.get_inputs()],
                          [TensorInfo(o.name, o.type, tuple(o.shape)) for o in session.get_outputs()],
                          session.get_modelmeta().custom_metadata_map)
    outputs = [o.name for o in session.get_outputs() if not o.name.startswith("state_out_")]
    assert tuple(outputs) == expected_outputs((Task.POSE,)) == ("ego_motion", "latent", "pair_valid")
    assert meta.tasks == (Task.POSE,)
    feeds = {i.name: np.zeros([3 if d == "N" else d for d in i.shape],
                              np.uint8 if i.name == "image" else np.float32)
             for i in session.get_inputs()}
    ego, _, valid = session.run(outputs, feeds)[:3]
    assert ego.shape == (3, 4, 4) and not valid.any()
