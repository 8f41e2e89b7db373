"""Geometry layers shared by the heads and the losses (camera optical frame: x right, y down, z fwd).

Poses are 4x4 rigid transforms ``T_a_b`` mapping points from frame b into frame a. A 6-vector pose
is ``[axis-angle (rad, 3), translation (m, 3)]``; the matrix is ``[R | t]`` with R from Rodrigues'
formula.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

_EPS = 1e-7


_SKEW = torch.tensor([[0, 0, 0, 0, 0, -1, 0, 1, 0],
                      [0, 0, 1, 0, 0, 0, -1, 0, 0],
                      [0, -1, 0, 1, 0, 0, 0, 0, 0]], dtype=torch.float32)
"""``[3, 9]``: ``a @ _SKEW`` is the row-major cross-product matrix ``[a]_x`` of ``a`` ``[N, 3]``."""


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rodrigues: ``[N, 3]`` axis-angle (rad) -> ``[N, 3, 3]`` rotation. Smooth at zero angle.

    ``R = cos(t) I + sin(t) [a]_x + (1 - cos(t)) a a^T`` for the unit axis ``a`` and angle ``t``,
    as a few whole-tensor ops (an exported graph of a handful of nodes, not one per entry)."""
    angle = axis_angle.norm(dim=1, keepdim=True).clamp_min(_EPS)        # [N, 1]
    axis = axis_angle / angle
    c, s = torch.cos(angle)[:, :, None], torch.sin(angle)[:, :, None]  # [N, 1, 1]
    skew = (axis @ _SKEW.to(axis.device, axis.dtype)).reshape(-1, 3, 3)
    outer = axis[:, :, None] * axis[:, None, :]
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device)
    return c * eye + s * skew + (1.0 - c) * outer


def matrix_to_axis_angle(rotation: Tensor) -> Tensor:
    """``[N, 3, 3]`` rotation -> ``[N, 3]`` axis-angle (rad), for angles in [0, pi)."""
    trace = rotation[:, 0, 0] + rotation[:, 1, 1] + rotation[:, 2, 2]
    angle = torch.acos(((trace - 1.0) / 2.0).clamp(-1.0 + 1e-6, 1.0 - 1e-6))
    vee = torch.stack([rotation[:, 2, 1] - rotation[:, 1, 2],
                       rotation[:, 0, 2] - rotation[:, 2, 0],
                       rotation[:, 1, 0] - rotation[:, 0, 1]], dim=1)
    scale = angle / (2.0 * torch.sin(angle)).clamp_min(_EPS)
    # Near zero angle, angle / (2 sin angle) -> 1/2.
    scale = torch.where(angle < 1e-4, torch.full_like(angle, 0.5), scale)
    return vee * scale[:, None]


def pose_vector_to_matrix(pose: Tensor) -> Tensor:
    """``[N, 6]`` (axis-angle rad, translation m) -> ``[N, 4, 4]`` rigid transform."""
    top = torch.cat([axis_angle_to_matrix(pose[:, :3]), pose[:, 3:, None]], dim=2)  # [N, 3, 4]
    # Append the row [0, 0, 0, 1] from constants: a placeholder 4th row (a copy of the 3rd) is
    # overwritten, so no batch-sized tensor is built from pose.shape (static export shapes).
    last_row = torch.tensor([[False] * 4] * 3 + [[True] * 4], device=pose.device)
    homogeneous = torch.tensor([[0.0] * 4] * 3 + [[0.0, 0.0, 0.0, 1.0]], dtype=pose.dtype,
                               device=pose.device)
    return torch.where(last_row, homogeneous, torch.cat([top, top[:, 2:]], dim=1))


def matrix_to_pose_vector(transform: Tensor) -> Tensor:
    """``[N, 4, 4]`` rigid transform -> ``[N, 6]`` (axis-angle rad, translation m)."""
    return torch.cat([matrix_to_axis_angle(transform[:, :3, :3]), transform[:, :3, 3]], dim=1)


def invert_rigid(transform: Tensor) -> Tensor:
    """Inverse of ``[N, 4, 4]`` rigid transforms: ``[R^T | -R^T t]``."""
    rot_t = transform[:, :3, :3].transpose(1, 2)
    trans = -(rot_t @ transform[:, :3, 3:])
    top = torch.cat([rot_t, trans], dim=2)
    return torch.cat([top, transform[:, 3:, :]], dim=1)


def intrinsics_matrix(normalized: Tensor | tuple[float, float, float, float],
                      height: int, width: int) -> Tensor:
    """Contract-normalised intrinsics ``[fx/W, fy/H, (cx+0.5)/W, (cy+0.5)/H]`` (``[4]`` or ``[N, 4]``)
    -> pixel K ``[N, 3, 3]`` (N=1 for [4]); the pixel-centre convention of runtime.preprocess."""
    k = torch.as_tensor(normalized, dtype=torch.float32)
    k = k.reshape(-1, 4)
    zero, one = torch.zeros_like(k[:, 0]), torch.ones_like(k[:, 0])
    rows = [k[:, 0] * width, zero, k[:, 2] * width - 0.5,
            zero, k[:, 1] * height, k[:, 3] * height - 0.5,
            zero, zero, one]
    return torch.stack(rows, dim=1).reshape(-1, 3, 3)


class BackprojectDepth(nn.Module):
    """Depth ``[N, 1, H, W]`` (m) + inverse intrinsics ``[N, 3, 3]`` -> points ``[N, 3, H*W]`` (m)."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                                torch.arange(width, dtype=torch.float32), indexing="ij")
        pix = torch.stack([xs.reshape(-1), ys.reshape(-1), torch.ones(height * width)], dim=0)
        self.register_buffer("pixels", pix[None], persistent=False)  # [1, 3, H*W] homogeneous

    def forward(self, depth_m: Tensor, inv_K: Tensor) -> Tensor:
        rays = inv_K @ self.pixels                                   # [N, 3, H*W]
        return rays * depth_m.flatten(2)


class Project3D(nn.Module):
    """Points ``[N, 3, H*W]`` (frame b), ``T_a_b`` ``[N, 4, 4]``, K ``[N, 3, 3]`` -> the sampling grid
    ``[N, H, W, 2]`` in [-1, 1] (``grid_sample`` convention, align_corners=False) and depth in a."""

    def __init__(self, height: int, width: int, eps: float = 1e-7) -> None:
        super().__init__()
        self.height, self.width, self.eps = height, width, eps

    def forward(self, points: Tensor, K: Tensor, T_a_b: Tensor) -> tuple[Tensor, Tensor]:
        moved = T_a_b[:, :3, :3] @ points + T_a_b[:, :3, 3:]          # [N, 3, H*W] in frame a
        cam = K @ moved
        z = cam[:, 2:3].clamp_min(self.eps)
        xy = cam[:, :2] / z                                           # pixel coordinates
        scale = torch.tensor([self.width, self.height], dtype=xy.dtype, device=xy.device)
        grid = (xy + 0.5) / scale[None, :, None] * 2.0 - 1.0
        grid = grid.reshape(-1, 2, self.height, self.width).permute(0, 2, 3, 1)
        return grid, moved[:, 2:3].reshape(-1, 1, self.height, self.width)


def rigid_flow(depth_m: Tensor, T_cam_prev_cam_cur: Tensor, inv_K: Tensor,
               backproject: BackprojectDepth) -> Tensor:
    """3D displacement ``[N, 3, H, W]`` (m) that the camera motion alone gives each pixel's point of
    frame t: ``T_prev_cur * P - P`` (the point in camera t-1 minus the point in camera t)."""
    n, _, h, w = depth_m.shape
    points = backproject(depth_m, inv_K)
    moved = T_cam_prev_cam_cur[:, :3, :3] @ points + T_cam_prev_cam_cur[:, :3, 3:]
    return (moved - points).reshape(n, 3, h, w)


def points_in_previous_camera(depth_m: Tensor, scene_flow_m: Tensor, T_cam_prev_cam_cur: Tensor,
                              inv_K: Tensor, backproject: BackprojectDepth) -> Tensor:
    """Where each pixel's point of frame t was at t-1, in camera t-1: ``T_prev_cur (P - S)``.

    ``scene_flow_m`` ``S`` ``[N, 3, H, W]`` is the contract's scene flow: the independent motion of
    the point between t-1 and t in the optical frame of t (zero for static points). Returns
    ``[N, 3, H*W]`` (m), ready for :class:`Project3D` with the identity transform.
    """
    points = backproject(depth_m, inv_K) - scene_flow_m.flatten(2)
    return T_cam_prev_cam_cur[:, :3, :3] @ points + T_cam_prev_cam_cur[:, :3, 3:]
