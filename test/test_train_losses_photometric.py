"""Photometric loss: SSIM, warping, the per-pixel minimum, the auto-mask, and the warp of a real
synthetic bag with its ground-truth depth, pose and scene flow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from loss_helpers import depth_to_disparity, make_batch, pinhole, textured_images, window_output, \
    window_poses
from unified_perception.train.losses.photometric import photometric_error, photometric_loss, \
    reproject
from unified_perception.train.losses.ssim import ssim

H, W = 24, 32
RANGE = (0.1, 100.0)


def _constant_depth_output(depth_m: float, T_src: torch.Tensor, b: int = 2, **current):
    disp = depth_to_disparity(torch.full((b, 1, H, W), depth_m), RANGE)
    return window_output((disp,), T_src, **current)


def test_ssim_of_an_image_with_itself_is_one_and_below_one_otherwise() -> None:
    images = textured_images(1, 2, H, W)
    x, y = images[:, 0], images[:, 1]
    torch.testing.assert_close(ssim(x, x), torch.ones_like(x), atol=1e-5, rtol=0)
    assert ssim(x, y).mean() < 0.9
    assert photometric_error(x, x).abs().max() < 1e-5


def test_photometric_loss_is_zero_for_identical_frames_and_identity_pose() -> None:
    frame = textured_images(2, 1, H, W)
    batch = make_batch(frame.expand(2, 3, 3, H, W).clone())
    output = _constant_depth_output(10.0, torch.eye(4).expand(2, 3, 4, 4))
    for automask in (False, True):
        terms = photometric_loss(batch, output, scales=1, automask=automask)
        assert abs(float(terms.loss)) < 1e-4


def test_photometric_loss_is_larger_for_a_wrong_pose() -> None:
    frame = textured_images(2, 1, H, W)
    batch = make_batch(frame.expand(2, 3, 3, H, W).clone())
    right = photometric_loss(batch, _constant_depth_output(10.0, torch.eye(4).expand(2, 3, 4, 4)),
                             scales=1, automask=False).loss
    sideways = window_poses(torch.tensor([[0.0, 0.0, 0.0, 0.8, 0.0, 0.0]] * 2))   # 0.8 m at 10 m
    wrong = photometric_loss(batch, _constant_depth_output(10.0, sideways), scales=1,
                             automask=False).loss
    assert float(wrong) > float(right) + 0.02


def test_reproject_shifts_a_fronto_parallel_plane_by_the_expected_disparity() -> None:
    """A camera 1 m to the right of t sees a plane at 10 m shifted left by f * 1 / 10 pixels."""
    image = textured_images(1, 1, H, W)[:, 0]
    K = pinhole(1, H, W)
    f = float(K[0, 0, 0])
    T = torch.eye(4)[None].clone()
    T[0, 0, 3] = -1.0                       # points of t in a camera 1 m to the right: x - 1
    shift = f / 10.0
    source = torch.roll(image, shifts=-round(shift), dims=-1)     # the source sees content moved left
    depth = torch.full((1, 1, H, W), 10.0 * shift / round(shift))  # a depth giving a whole-pixel shift
    warped = reproject(source, depth, T, K, torch.linalg.inv(K))
    inner = (slice(None), slice(None), slice(None), slice(2, W - 2 - round(shift)))
    torch.testing.assert_close(warped[inner], image[inner], atol=1e-4, rtol=0)


def test_automask_masks_static_pixels_where_source_equals_target_and_the_pose_is_wrong() -> None:
    frame = textured_images(1, 1, H, W)
    batch = make_batch(frame.expand(1, 3, 3, H, W).clone())
    wrong = window_poses(torch.tensor([[0.0, 0.05, 0.0, 0.5, 0.0, 0.2]]))
    terms = photometric_loss(batch, _constant_depth_output(5.0, wrong, b=1), scales=1, automask=True)
    assert terms.automask is not None and terms.automask.shape == (1, 1, H, W)
    inner = terms.automask[..., 4:-4, 4:-4]
    assert inner.float().mean() < 0.01                        # textured static region: masked
    assert float(terms.loss) < 1e-4                           # the identity error (0) wins


def test_automask_keeps_pixels_that_the_warp_explains_better_than_the_identity() -> None:
    """A true sideways motion: the warp with the right pose beats the unwarped frame on texture."""
    image = textured_images(1, 1, H, W)[:, 0]
    sources = [torch.roll(image, shifts=s, dims=-1) for s in (2, -2)]   # frames t-1, t+1
    batch = make_batch(torch.stack([sources[0], image, sources[1]], dim=1))
    f = float(batch.K[0, 0, 0])
    depth = f * 0.5 / 2.0                     # 0.5 m baseline -> 2 px at this depth
    poses = window_poses(torch.tensor([[0.0, 0.0, 0.0, 0.5, 0.0, 0.0]]))
    terms = photometric_loss(batch, _constant_depth_output(depth, poses, b=1), scales=1)
    assert terms.automask[..., 4:-4, 4:-4].float().mean() > 0.9


def test_every_scale_is_upsampled_and_averaged() -> None:
    frame = textured_images(1, 1, H, W)
    batch = make_batch(frame.expand(1, 3, 3, H, W).clone())
    disps = tuple(torch.full((1, 1, H // 2 ** s, W // 2 ** s), 0.2, requires_grad=True)
                  for s in range(4))
    poses = window_poses(torch.tensor([[0.0, 0.0, 0.0, 0.5, 0.0, 0.0]]))
    loss = photometric_loss(batch, window_output(disps, poses), scales=4, automask=False).loss
    loss.backward()
    assert all(d.grad is not None and d.grad.abs().sum() > 0 for d in disps)


# -- a real synthetic bag ------------------------------------------------------------------------

SYNTH_RANGE = (0.1, 1000.0)
"""Wide enough for the synthetic world's far pixels; sky (depth 0) is put at the far end."""


@pytest.fixture(scope="module")
def synthetic_sample(tmp_path_factory: pytest.TempPathFactory):
    from unified_perception.cli import main as cli_main
    from unified_perception.data.rosbag import RosbagSequenceReader
    from unified_perception.data.sample import POSE_FRAME_CAMERA

    out = tmp_path_factory.mktemp("synth") / "bag"
    assert cli_main(["synth", "--out", str(out), "--frames", "4", "--size", "64x128", "--seed", "1",
                     "--quiet"]) == 0
    sample = RosbagSequenceReader(out)[0]
    assert sample.pose_frame == POSE_FRAME_CAMERA   # T_odom_cam (the bag's tf_static gives T_base_cam)
    return sample


def _synthetic_batch_and_truth(sample):
    images = torch.from_numpy(sample.images).permute(0, 3, 1, 2).float()[None] / 255.0
    K = torch.from_numpy(sample.K).float()[None]
    poses = sample.poses
    T_src = torch.from_numpy(np.linalg.inv(poses) @ poses[sample.center]).float()[None]
    depth = torch.from_numpy(sample.depth_m)[None, None]
    depth = torch.where(depth > 0, depth, torch.tensor(SYNTH_RANGE[1]))       # sky: far away
    flow = torch.from_numpy(sample.scene_flow.copy()).permute(2, 0, 1)[None]
    return make_batch(images, K, sample.offsets), depth, T_src, flow


@pytest.mark.parametrize("automask", [False, True])
def test_warp_with_synthetic_ground_truth_beats_doubled_depth_and_zero_pose(synthetic_sample,
                                                                             automask: bool) -> None:
    batch, depth, T_src, flow = _synthetic_batch_and_truth(synthetic_sample)

    def loss(depth_m, T, scene_flow=flow):
        out = window_output((depth_to_disparity(depth_m, SYNTH_RANGE),), T, scene_flow_m=scene_flow)
        return float(photometric_loss(batch, out, scales=1, automask=automask,
                                      depth_range_m=SYNTH_RANGE).loss)

    truth = loss(depth, T_src)
    zero_pose = torch.eye(4).expand_as(T_src)
    assert truth < 0.8 * loss(depth * 2.0, T_src)
    assert truth < 0.8 * loss(depth, zero_pose)
    assert truth < loss(depth, T_src, torch.zeros_like(flow))   # the scene flow explains movers
