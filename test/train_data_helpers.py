"""Shared fixtures of the training-data tests: tiny synthetic bags (rendered once per session), the
KITTI / Cityscapes trees of the reader tests, and a photometric reprojection check."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from test_data_cityscapes import write_cityscapes
from test_data_kitti import write_kitti
from unified_perception.train.batch import Batch
from unified_perception.train.geometry import BackprojectDepth, Project3D
from unified_perception.train.synthetic_bags import render_synthetic_bags

BAG_SIZE = (64, 128)
BAG_FRAMES = 7


@pytest.fixture(scope="session")
def synthetic_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 7-frame 64 x 128 synthetic bag with every kind of ground truth."""
    return render_synthetic_bags(tmp_path_factory.mktemp("bags"), [0], BAG_FRAMES, BAG_SIZE)[0]


@pytest.fixture()
def kitti_root(tmp_path: Path) -> Path:
    return write_kitti(tmp_path / "kitti_raw")


@pytest.fixture()
def cityscapes_root(tmp_path: Path) -> Path:
    return write_cityscapes(tmp_path / "cityscapes")


def reprojection_error(batch: Batch, source: int, T_cam_src_cam_cur: torch.Tensor | None = None,
                       depth_scale: float = 1.0) -> torch.Tensor:
    """Per-sample mean L1 ``[B]`` between frame t and window frame ``source`` warped onto it with the
    batch's ground-truth depth, K and relative pose (or ``T_cam_src_cam_cur [B, 4, 4]``), over pixels
    with depth that are static and land inside the source image."""
    height, width = batch.size
    T = batch.T_cam_src_cam_cur[:, source] if T_cam_src_cam_cur is None else T_cam_src_cam_cur
    points = BackprojectDepth(height, width)(batch.depth_m * depth_scale, batch.inv_K)
    grid, _ = Project3D(height, width)(points, batch.K, T)
    warped = F.grid_sample(batch.images[:, source], grid, padding_mode="border", align_corners=False)
    inside = (grid.abs() <= 1).all(dim=-1)[:, None]
    valid = (batch.depth_m > 0) & (batch.motion_mask < 0.5) & inside
    error = (warped - batch.images[:, batch.center]).abs().mean(dim=1, keepdim=True)
    return (error * valid).sum(dim=(1, 2, 3)) / valid.sum(dim=(1, 2, 3)).clamp_min(1)
