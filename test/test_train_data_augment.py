"""Window-consistent augmentation: flips, principal-point shifts and colour jitter keep the geometry
of a real synthetic sample right."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from train_data_helpers import reprojection_error, synthetic_bag  # noqa: F401  (fixture)
from unified_perception.data import open_dataset
from unified_perception.train.augment import (
    AugmentConfig, _shift_hue, augment_batch, color_jitter, flip_horizontal, shift_principal_point)
from unified_perception.train.batch import Batch
from unified_perception.train.collate import collate_samples


@pytest.fixture(scope="module")
def batch(synthetic_bag: Path) -> Batch:
    reader = open_dataset("rosbag", synthetic_bag)
    return collate_samples([reader[1], reader[3]])


def assert_batches_equal(a: Batch, b: Batch, atol: float = 0.0) -> None:
    for field in dataclasses.fields(Batch):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, torch.Tensor):
            torch.testing.assert_close(x, y, atol=atol, rtol=0, msg=field.name)
        else:
            assert x == y, field.name


def test_flipping_twice_gives_back_the_original_sample(batch: Batch) -> None:
    assert_batches_equal(flip_horizontal(flip_horizontal(batch)), batch, atol=1e-6)


def test_flip_mirrors_maps_and_signs_of_steering_flow_offsets_and_principal_point(batch: Batch) -> None:
    flipped = flip_horizontal(batch)
    width = batch.size[1]
    assert torch.equal(flipped.images, batch.images.flip(-1))
    assert torch.equal(flipped.semantic, batch.semantic.flip(-1))
    assert torch.equal(flipped.center_heatmap, batch.center_heatmap.flip(-1))
    assert torch.equal(flipped.steering_rad, -batch.steering_rad)
    torch.testing.assert_close(flipped.K[:, 0, 2], width - 1 - batch.K[:, 0, 2])
    torch.testing.assert_close(flipped.K[:, 0, 0], batch.K[:, 0, 0])
    assert torch.equal(flipped.scene_flow[:, 0], -batch.scene_flow[:, 0].flip(-1))
    assert torch.equal(flipped.scene_flow[:, 1:], batch.scene_flow[:, 1:].flip(-1))
    assert torch.equal(flipped.center_offsets[:, 1], -batch.center_offsets[:, 1].flip(-1))
    # a left-right mirrored world: lateral translation and yaw change sign, forward motion does not
    T, T_flip = batch.T_cam_src_cam_cur[:, 0], flipped.T_cam_src_cam_cur[:, 0]
    torch.testing.assert_close(T_flip[:, :3, 3], T[:, :3, 3] * torch.tensor([-1.0, 1.0, 1.0]))
    torch.testing.assert_close(T_flip[:, 0, 2], -T[:, 0, 2])
    # offsets of the flipped sample still point every thing pixel at its flipped instance centre
    panoptic = flipped.panoptic[0].numpy()
    offsets = flipped.center_offsets[0].numpy()
    things = flipped.thing_mask[0, 0].numpy() > 0
    for value in np.unique(panoptic[things]):
        ys, xs = np.nonzero(panoptic == value)
        np.testing.assert_allclose(xs + offsets[1, ys, xs], xs.mean(), atol=1e-3)


def test_flipped_depth_pose_and_intrinsics_reproject_the_flipped_frames_as_well(batch: Batch) -> None:
    flipped = flip_horizontal(batch)
    identity = torch.eye(4).expand(batch.batch_size, 4, 4)
    for source in batch.source_indices():
        original = reprojection_error(batch, source)
        mirrored = reprojection_error(flipped, source)
        torch.testing.assert_close(mirrored, original, atol=2e-3, rtol=0.05)
        assert (mirrored < 0.7 * reprojection_error(flipped, source, identity)).all()
        # the unflipped pose on flipped images is wrong wherever the car turns or drifts sideways
        assert (mirrored <= reprojection_error(flipped, source, batch.T_cam_src_cam_cur[:, source])).all()


def test_flipped_intrinsics_and_pose_project_every_pixel_to_the_mirror_of_its_original_target(
        batch: Batch) -> None:
    """Exact form of the flip's geometry for a pose with yaw, pitch and a sideways move (the
    synthetic drive above goes straight) and an off-centre principal point."""
    from unified_perception.train.geometry import BackprojectDepth, Project3D, pose_vector_to_matrix
    off_centre = shift_principal_point(batch, dy=0, dx=6)
    pose = torch.tensor([[0.01, 0.08, -0.02, 0.4, -0.05, 1.2]]).expand(batch.batch_size, 6)
    T = pose_vector_to_matrix(pose)
    off_centre = dataclasses.replace(off_centre, T_cam_src_cam_cur=T[:, None].repeat(1, 3, 1, 1))
    flipped = flip_horizontal(off_centre)
    height, width = batch.size
    backproject, project = BackprojectDepth(height, width), Project3D(height, width)

    def target_pixels(b: Batch) -> torch.Tensor:
        depth = torch.full_like(b.depth_m, 12.0)
        grid, _ = project(backproject(depth, b.inv_K), b.K, b.T_cam_src_cam_cur[:, 0])
        return (grid + 1) / 2 * torch.tensor([width, height]) - 0.5          # pixel coordinates

    original, mirrored = target_pixels(off_centre), target_pixels(flipped)
    torch.testing.assert_close(mirrored[..., 0], (width - 1 - original[..., 0]).flip(-1), atol=1e-3, rtol=0)
    torch.testing.assert_close(mirrored[..., 1], original[..., 1].flip(-1), atol=1e-3, rtol=0)


def test_principal_point_shift_moves_images_and_intrinsics_together(batch: Batch) -> None:
    shifted = shift_principal_point(batch, dy=2, dx=-5)
    torch.testing.assert_close(shifted.K[:, 0, 2], batch.K[:, 0, 2] - 5)
    torch.testing.assert_close(shifted.K[:, 1, 2], batch.K[:, 1, 2] + 2)
    assert torch.equal(shifted.images[..., 2:, :-5], batch.images[..., :-2, 5:])
    assert torch.equal(shifted.depth_m[..., 2:, :-5], batch.depth_m[..., :-2, 5:])
    assert not shifted.depth_m[..., :2, :].any() and not shifted.depth_m[..., -5:].any()
    assert (shifted.semantic[:, :2] == 255).all()
    assert not shifted.has_steering.any() and batch.has_steering.all()   # a sideways shift looks like a yaw
    assert shift_principal_point(batch, dy=3, dx=0).has_steering.all()
    for source in batch.source_indices():
        torch.testing.assert_close(reprojection_error(shifted, source), reprojection_error(batch, source),
                                   atol=2e-3, rtol=0.1)
    # instance targets follow the shifted instances
    things = shifted.thing_mask[0, 0] > 0
    assert torch.equal(things[2:, :-5], batch.thing_mask[0, 0, :-2, 5:] > 0)


def test_colour_jitter_changes_only_the_network_input_and_alike_in_every_frame(batch: Batch) -> None:
    config = AugmentConfig(flip_probability=0.0, jitter_probability=1.0)
    out = augment_batch(batch, config, torch.Generator().manual_seed(3))
    assert torch.equal(out.images, batch.images)
    assert not torch.equal(out.network_images, batch.images)
    assert out.network_images.min() >= 0 and out.network_images.max() <= 1
    again = augment_batch(batch, config, torch.Generator().manual_seed(3))
    assert torch.equal(again.network_images, out.network_images)
    # brightness alone: one factor for every frame of a window
    bright = AugmentConfig(contrast=0.0, saturation=0.0, hue=0.0)
    frames = batch.images[0]
    jittered = color_jitter(frames, bright, torch.Generator().manual_seed(0))
    unclipped = (jittered > 0.05) & (jittered < 0.95) & (frames > 0.05)
    ratios = (jittered / frames.clamp_min(1e-6))[unclipped]
    assert ratios.std() < 1e-4 and abs(ratios.mean() - 1.0) > 1e-3


def test_hue_rotation_by_a_third_turns_red_into_green() -> None:
    red = torch.tensor([1.0, 0.2, 0.2]).view(1, 3, 1, 1)
    torch.testing.assert_close(_shift_hue(red, 1 / 3).flatten(), torch.tensor([0.2, 1.0, 0.2]))
    torch.testing.assert_close(_shift_hue(red, 1.0), red)
    rainbow = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(_shift_hue(_shift_hue(rainbow, 0.07), -0.07), rainbow, atol=1e-5, rtol=0)


def test_same_seed_gives_the_same_augmentation_and_flags_survive(batch: Batch) -> None:
    config = AugmentConfig(shift_probability=0.5)
    a = augment_batch(batch, config, torch.Generator().manual_seed(11))
    b = augment_batch(batch, config, torch.Generator().manual_seed(11))
    assert_batches_equal(a, b)
    assert a.has_depth.all() and a.has_pose.all()


def test_bad_augmentation_settings_name_the_setting() -> None:
    with pytest.raises(ValueError, match="flip_probability"):
        AugmentConfig(flip_probability=1.5)
    with pytest.raises(ValueError, match="hue"):
        AugmentConfig(hue=0.7)
