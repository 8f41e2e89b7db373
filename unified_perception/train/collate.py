"""From the readers' numpy :class:`~unified_perception.data.sample.Sample` windows to the named torch
:class:`~unified_perception.train.batch.Batch`.

:func:`sample_to_tensors` turns one sample into a batch of one (every field filled, with its
``has_*`` flag); :func:`concat_batches` stacks such rows; :func:`collate_samples` does both.
Augmentation (``train.augment``) works on the rows in between.

Window spacing: a sample's ``offsets`` are ``frame_gap`` times the batch's ``offsets`` (a window
(-g, 0, g) has gap g and batch offsets (-1, 0, 1)); ``frame_gap`` is the greatest common divisor of
the offsets.
"""

from __future__ import annotations

import dataclasses
import math
from functools import reduce
from typing import Sequence

import numpy as np
import torch

from unified_perception.contract import IGNORE_ID
from unified_perception.data.errors import DatasetConfigError
from unified_perception.data.sample import (
    PANOPTIC_IGNORE, POSE_FRAME_BASE, POSE_FRAME_CAMERA, Sample)
from unified_perception.train.batch import Batch
from unified_perception.train.panoptic_targets import panoptic_targets
from unified_perception.transforms import invert_transform


def window_spacing(offsets: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    """``(frame_gap, unit offsets)`` of a window: ``(-2, 0, 2) -> (2, (-1, 0, 1))``; ``(0,) -> (1, (0,))``."""
    gap = reduce(math.gcd, (abs(int(o)) for o in offsets), 0) or 1
    return gap, tuple(int(o) // gap for o in offsets)


def relative_camera_poses(sample: Sample, T_base_cam: np.ndarray | None = None) -> np.ndarray | None:
    """``T_cam_src_cam_cur [T, 4, 4] float64``: points of camera t in the camera of each window frame
    s, ``inv(T_odom_cam[s]) @ T_odom_cam[t]`` (identity at the centre).

    ``base_link`` poses become camera poses with ``T_base_cam`` (the camera optical frame in the base
    frame); None where there are no poses, a pose is not finite, or base poses come without
    ``T_base_cam`` (for bags: set ``T_base_cam`` in the topic map, or record ``/tf_static``).
    """
    poses = sample.poses
    if poses is None or not np.isfinite(poses).all():
        return None
    if sample.pose_frame == POSE_FRAME_BASE:
        if T_base_cam is None:
            return None
        poses = poses @ np.asarray(T_base_cam, dtype=np.float64)
    elif sample.pose_frame != POSE_FRAME_CAMERA:
        return None
    relative = invert_transform(poses) @ poses[sample.center]
    relative[sample.center] = np.eye(4)          # exactly, not up to rounding
    return relative


def _map(array: np.ndarray | None, shape: tuple[int, ...], fill: float, dtype: torch.dtype) -> torch.Tensor:
    if array is None:
        return torch.full(shape, fill, dtype=dtype)
    return torch.from_numpy(np.require(array, requirements=["C", "W"])).to(dtype).reshape(shape)


def sample_to_tensors(sample: Sample, T_base_cam: np.ndarray | None = None,
                      center_sigma_px: float | None = None) -> Batch:
    """One sample as a :class:`Batch` of one row, every field filled.

    Images become ``float32`` in [0, 1] (``network_images`` is the same tensor until augmentation
    replaces it); missing ground truth becomes zeros (255 / ``PANOPTIC_IGNORE`` for labels) with its
    ``has_*`` flag False. Instance targets come from ``panoptic`` where the sample has instances
    (:func:`~unified_perception.train.panoptic_targets.panoptic_targets`, sigma
    ``center_sigma_px`` or the size-scaled default). Scene flow is real only for ``frame_gap == 1``
    windows that hold frame t-1 (the bags record flow between adjacent frames); the relative poses
    come from :func:`relative_camera_poses`; steering counts when every window frame has a finite
    value.
    """
    height, width = sample.size
    frames = len(sample.offsets)
    gap, offsets = window_spacing(sample.offsets)
    images = torch.from_numpy(np.require(sample.images, requirements=["C", "W"])).permute(0, 3, 1, 2)
    images = (images.to(torch.float32) / 255.0).unsqueeze(0)
    K = torch.from_numpy(np.asarray(sample.K, dtype=np.float64))
    has_instances = sample.instances is not None and sample.panoptic is not None
    if has_instances:
        targets = panoptic_targets(sample.panoptic, center_sigma_px)
        heatmap, offsets_px, things = targets.heatmap, targets.offsets, targets.thing_mask
    else:
        heatmap = offsets_px = things = None
    T_rel = relative_camera_poses(sample, T_base_cam)
    steering = sample.steering_rad
    has_steering = steering is not None and bool(np.isfinite(steering).all())
    has_flow = sample.scene_flow is not None and gap == 1 and -1 in offsets
    flow = None if sample.scene_flow is None else np.moveaxis(sample.scene_flow, -1, 0)
    flag = lambda value: torch.tensor([bool(value)])                       # noqa: E731
    return Batch(
        images=images, network_images=images, K=K.to(torch.float32)[None],
        inv_K=torch.linalg.inv(K).to(torch.float32)[None],
        stamps_s=torch.from_numpy(np.asarray(sample.stamps_s, dtype=np.float64))[None],
        frame_gap=torch.tensor([gap], dtype=torch.int64), offsets=offsets,
        depth_m=_map(sample.depth_m, (1, 1, height, width), 0.0, torch.float32),
        semantic=_map(sample.semantic, (1, height, width), IGNORE_ID, torch.int64),
        panoptic=_map(sample.panoptic if has_instances else None, (1, height, width),
                      PANOPTIC_IGNORE, torch.int64),
        center_heatmap=_map(heatmap, (1, 1, height, width), 0.0, torch.float32),
        center_offsets=_map(offsets_px, (1, 2, height, width), 0.0, torch.float32),
        thing_mask=_map(things, (1, 1, height, width), 0.0, torch.float32),
        motion_mask=_map(sample.motion_mask, (1, 1, height, width), 0.0, torch.float32),
        scene_flow=_map(flow if has_flow else None, (1, 3, height, width), 0.0, torch.float32),
        T_cam_src_cam_cur=(torch.eye(4).expand(1, frames, 4, 4).clone() if T_rel is None
                           else torch.from_numpy(T_rel).to(torch.float32)[None]),
        steering_rad=_map(steering if has_steering else None, (1, frames), 0.0, torch.float32),
        has_depth=flag(sample.depth_m is not None), has_semantic=flag(sample.semantic is not None),
        has_instances=flag(has_instances), has_motion=flag(sample.motion_mask is not None),
        has_scene_flow=flag(has_flow), has_pose=flag(T_rel is not None),
        has_steering=flag(has_steering), sources=(sample.source,))


def concat_batches(batches: Sequence[Batch]) -> Batch:
    """Stack batches along the batch axis. They must share the image size and the window offsets."""
    if not batches:
        raise ValueError("cannot collate an empty list of samples")
    first = batches[0]
    for other in batches[1:]:
        if other.size != first.size:
            raise DatasetConfigError(
                f"samples of different sizes in one batch: {first.size} ({first.sources[0]}) and "
                f"{other.size} ({other.sources[0]}); set 'size' in the data mix so every data set "
                f"is resized to the same (height, width)")
        if other.offsets != first.offsets:
            raise DatasetConfigError(
                f"samples with different windows in one batch: offsets {first.offsets} and "
                f"{other.offsets} (per frame gap); open every data set with the same offsets")
    if len(batches) == 1:
        return first
    fields = {}
    for field in dataclasses.fields(Batch):
        values = [getattr(b, field.name) for b in batches]
        if isinstance(values[0], torch.Tensor):
            fields[field.name] = torch.cat(values, dim=0)
        elif field.name == "sources":
            fields[field.name] = tuple(s for b in batches for s in b.sources)
        else:
            fields[field.name] = values[0]
    return Batch(**fields)


def collate_samples(samples: Sequence[Sample], T_base_cam: np.ndarray | None = None) -> Batch:
    """``B`` samples -> one :class:`Batch` (no augmentation; see ``train.loader`` for that)."""
    return concat_batches([sample_to_tensors(s, T_base_cam) for s in samples])
