"""The named training batch: a window of frames per sample with every ground-truth field and where
it exists.

A batch holds ``B`` samples of ``T`` frames each (window order = ``offsets``; the centre frame t has
offset 0 and index ``center``). Per-pixel ground truth belongs to the centre frame. A data set that
lacks a field still fills it (zeros / ignore) so that every batch has the same layout; the matching
``has_*`` flag ``[B] bool`` says in which samples the field is real, and losses use only those rows.

Two copies of the images exist: ``images`` (the original colours, what the photometric losses
compare) and ``network_images`` (colour-jittered, what the network sees), as in monodepth2.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Batch:
    """One training batch (see the module docstring).

    Attributes:
        images: ``[B, T, 3, H, W] float32`` RGB in [0, 1], original colours.
        network_images: ``[B, T, 3, H, W] float32`` RGB in [0, 1], augmented network input.
        K: ``[B, 3, 3] float32`` pinhole intrinsics in pixels of ``H x W`` (after augmentation).
        inv_K: ``[B, 3, 3] float32`` inverse of ``K``.
        stamps_s: ``[B, T] float64`` capture times (s).
        frame_gap: ``[B] int64`` recorded frames between consecutive window frames (1 = adjacent).
        offsets: window offsets relative to the centre frame (the same for every sample).
        depth_m: ``[B, 1, H, W]`` metric depth along optical z of frame t (m), 0 = no value.
        semantic: ``[B, H, W] int64`` train ids, 255 = ignore.
        panoptic: ``[B, H, W] int64`` class * 1000 + instance (``PANOPTIC_IGNORE`` = no label).
        center_heatmap: ``[B, 1, H, W]`` Panoptic-DeepLab instance-centre heatmap target in [0, 1]
            (a Gaussian at each thing instance's centre of mass).
        center_offsets: ``[B, 2, H, W]`` (dy, dx) px from each thing pixel to its instance centre
            (0 elsewhere).
        thing_mask: ``[B, 1, H, W] float32`` 1 on pixels of thing instances (where offsets are
            supervised).
        motion_mask: ``[B, 1, H, W] float32`` 1 where the point of frame t moves on its own.
        scene_flow: ``[B, 3, H, W]`` m, independent motion of frame t's points between the previous
            window frame and t, optical frame of t (only real for ``frame_gap == 1``).
        T_cam_src_cam_cur: ``[B, T, 4, 4]`` maps points of camera t into the camera of each window
            frame (identity at ``center``), from ground-truth poses.
        steering_rad: ``[B, T]`` steering angle of each frame (rad, positive left).
        has_depth, has_semantic, has_instances, has_motion, has_scene_flow, has_pose, has_steering:
            ``[B] bool`` whether the field is real in each sample.
        sources: where each sample came from (for logs).
    """

    images: Tensor
    network_images: Tensor
    K: Tensor
    inv_K: Tensor
    stamps_s: Tensor
    frame_gap: Tensor
    offsets: tuple[int, ...]
    depth_m: Tensor
    semantic: Tensor
    panoptic: Tensor
    center_heatmap: Tensor
    center_offsets: Tensor
    thing_mask: Tensor
    motion_mask: Tensor
    scene_flow: Tensor
    T_cam_src_cam_cur: Tensor
    steering_rad: Tensor
    has_depth: Tensor
    has_semantic: Tensor
    has_instances: Tensor
    has_motion: Tensor
    has_scene_flow: Tensor
    has_pose: Tensor
    has_steering: Tensor
    sources: tuple[str, ...] = ()

    @property
    def center(self) -> int:
        """Index of the centre frame t in the window."""
        return self.offsets.index(0)

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` in pixels."""
        return int(self.images.shape[-2]), int(self.images.shape[-1])

    @property
    def batch_size(self) -> int:
        return int(self.images.shape[0])

    def source_indices(self) -> tuple[int, ...]:
        """Window indices of the source frames of the photometric loss (every frame but t)."""
        return tuple(i for i in range(len(self.offsets)) if i != self.center)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        """A copy with every tensor on ``device``."""
        moved = {f.name: (v.to(device, non_blocking=non_blocking) if isinstance(v, Tensor) else v)
                 for f in dataclasses.fields(self) for v in (getattr(self, f.name),)}
        return Batch(**moved)

    def pin_memory(self) -> "Batch":
        """Page-locked copy for fast host-to-GPU transfer (called by DataLoader(pin_memory=True))."""
        pinned = {f.name: (v.pin_memory() if isinstance(v, Tensor) else v)
                  for f in dataclasses.fields(self) for v in (getattr(self, f.name),)}
        return Batch(**pinned)
