"""Samples of the real readers (synthetic bag, KITTI and Cityscapes fixtures) -> the named Batch."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from test_data_cityscapes import ANNOTATED, FRAMES
from train_data_helpers import (  # noqa: F401  (fixtures)
    BAG_SIZE, cityscapes_root, kitti_root, reprojection_error, synthetic_bag)
from unified_perception.contract import IGNORE_ID, THING_CLASS_IDS
from unified_perception.data import open_dataset
from unified_perception.data.errors import DatasetConfigError
from unified_perception.data.sample import PANOPTIC_IGNORE, POSE_FRAME_BASE
from unified_perception.train.collate import collate_samples, relative_camera_poses, sample_to_tensors
from unified_perception.train.panoptic_targets import center_sigma_px

FLAGS = ("has_depth", "has_semantic", "has_instances", "has_motion", "has_scene_flow", "has_pose",
         "has_steering")


def flags(batch) -> dict[str, list[bool]]:
    return {name: getattr(batch, name).tolist() for name in FLAGS}


def test_synthetic_bag_batch_has_the_documented_layout_and_every_field(synthetic_bag: Path) -> None:
    reader = open_dataset("rosbag", synthetic_bag)
    samples = [reader[0], reader[1]]
    batch = collate_samples(samples)
    h, w = BAG_SIZE
    expected = {
        "images": ((2, 3, 3, h, w), torch.float32), "network_images": ((2, 3, 3, h, w), torch.float32),
        "K": ((2, 3, 3), torch.float32), "inv_K": ((2, 3, 3), torch.float32),
        "stamps_s": ((2, 3), torch.float64), "frame_gap": ((2,), torch.int64),
        "depth_m": ((2, 1, h, w), torch.float32), "semantic": ((2, h, w), torch.int64),
        "panoptic": ((2, h, w), torch.int64), "center_heatmap": ((2, 1, h, w), torch.float32),
        "center_offsets": ((2, 2, h, w), torch.float32), "thing_mask": ((2, 1, h, w), torch.float32),
        "motion_mask": ((2, 1, h, w), torch.float32), "scene_flow": ((2, 3, h, w), torch.float32),
        "T_cam_src_cam_cur": ((2, 3, 4, 4), torch.float32), "steering_rad": ((2, 3), torch.float32),
        **{name: ((2,), torch.bool) for name in FLAGS}}
    for name, (shape, dtype) in expected.items():
        value = getattr(batch, name)
        assert (tuple(value.shape), value.dtype) == (shape, dtype), name
    assert all(all(v) for v in flags(batch).values())
    assert batch.offsets == (-1, 0, 1) and batch.frame_gap.tolist() == [1, 1]
    np.testing.assert_allclose(batch.images[1].permute(0, 2, 3, 1).numpy() * 255, samples[1].images,
                               atol=1e-3)
    assert torch.equal(batch.network_images, batch.images)
    np.testing.assert_allclose(batch.K[0].numpy(), samples[0].K, rtol=1e-6)
    np.testing.assert_allclose((batch.K @ batch.inv_K).numpy(), np.eye(3)[None].repeat(2, 0), atol=1e-5)
    np.testing.assert_allclose(batch.stamps_s[0].numpy(), samples[0].stamps_s)
    np.testing.assert_array_equal(batch.semantic[0].numpy(), samples[0].semantic)
    np.testing.assert_array_equal(batch.scene_flow[0].permute(1, 2, 0).numpy(), samples[0].scene_flow)
    np.testing.assert_array_equal(batch.steering_rad[1].numpy(), samples[1].steering_rad)
    assert torch.equal(batch.T_cam_src_cam_cur[:, 1], torch.eye(4).expand(2, 4, 4))
    assert batch.sources == (samples[0].source, samples[1].source)


def test_kitti_batch_has_depth_and_poses_and_the_relative_pose_is_the_inverse_motion(
        kitti_root: Path) -> None:
    sample = open_dataset("kitti_raw", kitti_root, offsets=(-1, 0, 1))[0]
    batch = collate_samples([sample])
    assert flags(batch) == {"has_depth": [True], "has_semantic": [False], "has_instances": [False],
                            "has_motion": [False], "has_scene_flow": [False], "has_pose": [True],
                            "has_steering": [False]}
    assert (batch.semantic == IGNORE_ID).all() and (batch.panoptic == PANOPTIC_IGNORE).all()
    assert not batch.center_heatmap.any() and not batch.thing_mask.any() and not batch.scene_flow.any()
    # camera t -> camera t-1 is the inverse of the motion t-1 -> t read straight from the poses
    motion_prev_to_cur = np.linalg.inv(sample.poses[0]) @ sample.poses[1]
    np.testing.assert_allclose(batch.T_cam_src_cam_cur[0, 0].numpy(), motion_prev_to_cur, atol=1e-5)
    np.testing.assert_allclose(batch.T_cam_src_cam_cur[0, 2].numpy(),
                               np.linalg.inv(sample.poses[2]) @ sample.poses[1], atol=1e-5)


def test_cityscapes_batch_has_labels_instances_and_depth_but_no_motion_pose_or_steering(
        cityscapes_root: Path) -> None:
    reader = open_dataset("cityscapes", cityscapes_root)
    annotated = next(s for s in reader if s.source.endswith(f"{ANNOTATED:06d}"))
    plain = next(s for s in reader if not s.source.endswith(f"{ANNOTATED:06d}"))
    batch = collate_samples([annotated, plain])
    assert flags(batch) == {"has_depth": [True, False], "has_semantic": [True, False],
                            "has_instances": [True, False], "has_motion": [False, False],
                            "has_scene_flow": [False, False], "has_pose": [False, False],
                            "has_steering": [False, False]}
    assert len(FRAMES) - 2 == len(reader)
    assert (batch.semantic[1] == IGNORE_ID).all() and not batch.depth_m[1].any()


def test_center_heatmap_peaks_at_one_at_each_instance_centre_and_offsets_point_to_it(
        cityscapes_root: Path, synthetic_bag: Path) -> None:
    reader = open_dataset("cityscapes", cityscapes_root, frames="annotated")
    bag = open_dataset("rosbag", synthetic_bag)
    for sample in (reader[0], bag[2]):
        batch = collate_samples([sample])
        panoptic = sample.panoptic
        is_thing = np.isin(panoptic // 1000, THING_CLASS_IDS) & (panoptic % 1000 > 0)
        ids = np.unique(panoptic[is_thing])
        assert ids.size >= 2
        heatmap = batch.center_heatmap[0, 0].numpy()
        offsets = batch.center_offsets[0].numpy()
        for value in ids:
            ys, xs = np.nonzero(panoptic == value)
            cy, cx = ys.mean(), xs.mean()
            assert heatmap[int(np.rint(cy)), int(np.rint(cx))] == pytest.approx(1.0)
            np.testing.assert_allclose(ys + offsets[0, ys, xs], cy, atol=1e-4)
            np.testing.assert_allclose(xs + offsets[1, ys, xs], cx, atol=1e-4)
        np.testing.assert_array_equal(batch.thing_mask[0, 0].numpy() > 0, is_thing)
        assert not offsets[:, ~is_thing].any()
        assert heatmap.max() == pytest.approx(1.0) and heatmap.min() >= 0
    # the Cityscapes crowd of cars (thing class, instance 0) is not an instance
    crowd = collate_samples([reader[0]]).thing_mask[0, 0, 45:55, 90:100]
    assert not crowd.any()


def test_heatmap_sigma_follows_panoptic_deeplab_at_its_resolution_and_scales_with_size() -> None:
    assert center_sigma_px(1024, 2048) == pytest.approx(8.0)
    assert center_sigma_px(512, 1024) == pytest.approx(4.0)
    assert center_sigma_px(192, 640) == pytest.approx(2.0)      # the floor (1.94 unclamped)


def test_ground_truth_poses_reproject_frame_t_into_the_sources(synthetic_bag: Path) -> None:
    reader = open_dataset("rosbag", synthetic_bag)
    batch = collate_samples([reader[i] for i in range(len(reader))])
    identity = torch.eye(4).expand(batch.batch_size, 4, 4)
    for source in batch.source_indices():
        good = reprojection_error(batch, source)
        assert (good < 0.7 * reprojection_error(batch, source, identity)).all()
        assert (good < reprojection_error(batch, source, depth_scale=2.0)).all()
        assert (good < 0.05).all()


def test_base_link_poses_become_camera_poses_only_with_the_extrinsic(synthetic_bag: Path) -> None:
    sample = open_dataset("rosbag", synthetic_bag)[0]
    T_base_cam = np.array([[0, 0, 1, 1.6], [-1, 0, 0, 0], [0, -1, 0, 1.5], [0, 0, 0, 1.0]])
    base = replace(sample, poses=sample.poses @ np.linalg.inv(T_base_cam), pose_frame=POSE_FRAME_BASE)
    assert not collate_samples([base]).has_pose.item()
    np.testing.assert_allclose(relative_camera_poses(base, T_base_cam), relative_camera_poses(sample),
                               atol=1e-9)
    no_odometry = replace(sample, poses=np.full_like(sample.poses, np.nan))
    assert not sample_to_tensors(no_odometry).has_pose.item()


def test_scene_flow_counts_only_between_adjacent_recorded_frames(synthetic_bag: Path) -> None:
    sample = open_dataset("rosbag", synthetic_bag, offsets=(-2, 0, 2))[0]
    batch = collate_samples([sample])
    assert batch.offsets == (-1, 0, 1) and batch.frame_gap.item() == 2
    assert not batch.has_scene_flow.item() and not batch.scene_flow.any()
    assert batch.has_motion.item() and batch.has_pose.item()
    np.testing.assert_allclose(np.diff(batch.stamps_s[0].numpy()), 0.2, atol=1e-6)


def test_samples_of_different_sizes_or_windows_give_one_clear_message(synthetic_bag: Path) -> None:
    full = open_dataset("rosbag", synthetic_bag)[0]
    small = open_dataset("rosbag", synthetic_bag, size=(32, 64))[0]
    with pytest.raises(DatasetConfigError, match="set 'size' in the data mix"):
        collate_samples([full, small])
    late = open_dataset("rosbag", synthetic_bag, offsets=(-2, -1, 0))[0]
    with pytest.raises(DatasetConfigError, match="different windows"):
        collate_samples([full, late])
