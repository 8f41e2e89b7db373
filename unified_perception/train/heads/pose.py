"""Multi-scale pose decoder (the paper's): progressive fusion of the frame pair's features.

Stage k (strides 4, 8, 16, 32) takes ``cat(previous stage output, f_prev, f_cur)`` at its stride,
applies a 1x1 conv and two residual blocks (the first with stride 2, so its output meets the next
stride's features). A conv head (1x1, two 3x3, 1x1 to 6) is averaged over space and scaled by 0.01
to give ``[axis-angle, translation]``. The release predicts 12 numbers (two transforms) and uses the
first; only that one is predicted here.

Convention: the 6 numbers parameterise ``T_cam_cur_cam_prev`` (the motion from the pair's first to
second frame, as monodepth2's "inverted" pose); the decoder returns its inverse as the contract's
``T_cam_prev_cam_cur`` (points of frame t expressed in camera t-1).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from unified_perception.train.geometry import invert_rigid, pose_vector_to_matrix
from unified_perception.train.heads.layers import ResidualBlock

POSE_SCALE = 0.01


class PoseOutput(NamedTuple):
    pose_vector: Tensor         # [N, 6] axis-angle (rad) + translation (m) of T_cam_cur_cam_prev
    T_cam_prev_cam_cur: Tensor  # [N, 4, 4]


class MultiScalePoseDecoder(nn.Module):
    """``[f_prev, f_cur]`` at strides 4..32 -> relative pose between the two frames."""

    def __init__(self, in_channels: tuple[int, ...], widths: tuple[int, ...] = (64, 128, 256, 512),
                 head_width: int = 256) -> None:
        super().__init__()
        stages = []
        previous = 0
        for c, width in zip(in_channels, widths):
            stages.append(nn.Sequential(nn.Conv2d(previous + 2 * c, width, 1),
                                        nn.ReLU(inplace=True),
                                        ResidualBlock(width, width, stride=2),
                                        ResidualBlock(width, width)))
            previous = width
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(
            nn.Conv2d(previous, head_width, 1), nn.ReLU(inplace=True),
            nn.Conv2d(head_width, head_width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(head_width, head_width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(head_width, 6, 1))

    def forward(self, prev_features: list[Tensor], cur_features: list[Tensor]) -> PoseOutput:
        x = None
        for stage, f_prev, f_cur in zip(self.stages, prev_features, cur_features):
            pair = torch.cat([f_prev, f_cur], dim=1)
            if x is not None:
                x = nn.functional.interpolate(x, size=pair.shape[-2:], mode="nearest") \
                    if x.shape[-2:] != pair.shape[-2:] else x
                pair = torch.cat([x, pair], dim=1)
            x = stage(pair)
        pose = POSE_SCALE * self.head(x).mean(dim=(2, 3))                # [N, 6]
        return PoseOutput(pose, invert_rigid(pose_vector_to_matrix(pose)))
