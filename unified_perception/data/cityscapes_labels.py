"""Cityscapes label files -> train ids, instances and panoptic ids; disparity -> metric depth."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from unified_perception.contract import CLASSES, IGNORE_ID, PANOPTIC_LABEL_DIVISOR, THING_CLASS_IDS
from unified_perception.data.errors import DatasetError
from unified_perception.data.sample import PANOPTIC_IGNORE

CITYSCAPES_INSTANCE_DIVISOR = 1000
"""In ``*_instanceIds.png`` a value >= 1000 is ``label_id * 1000 + instance`` (instance from 0)."""

LABEL_TO_TRAIN = np.full(256, IGNORE_ID, dtype=np.uint8)
for _cls in CLASSES:
    LABEL_TO_TRAIN[_cls.cityscapes_label_id] = _cls.train_id
"""``[256] uint8`` lookup: Cityscapes label id -> train id (255 for the classes not trained on)."""

_IS_THING = np.zeros(256, dtype=bool)
_IS_THING[list(THING_CLASS_IDS)] = True


class PanopticLabels(NamedTuple):
    """Centre-frame labels in train ids: ``[H, W] uint8``, ``[H, W] int32``, ``[H, W] int32``."""

    semantic: np.ndarray
    instances: np.ndarray
    panoptic: np.ndarray


def labels_from_ids(label_ids: np.ndarray, instance_ids: np.ndarray | None) -> PanopticLabels:
    """Train ids, instances and panoptic ids from ``labelIds`` and ``instanceIds`` images.

    ``label_ids``: ``[H, W]`` Cityscapes label ids. ``instance_ids``: ``[H, W]`` uint16/int32 values
    (``>= 1000``: ``label_id * 1000 + k``, ``k`` counting from 0 per class; below: the label id of
    stuff or of a crowd region), or None (no instances: every pixel gets instance 0).

    Instances are renumbered 1..N per image over the distinct ``>= 1000`` values of thing classes
    (in increasing raw order), so ids are unique across classes and 0 stays "no instance" (raw
    ``k`` starts at 0, which would collide with it). Crowd regions keep their class with instance 0.
    Panoptic is ``train_id * 1000 + instance``; unlabelled pixels get :data:`PANOPTIC_IGNORE`.
    """
    semantic = LABEL_TO_TRAIN[np.asarray(label_ids, dtype=np.int64).clip(0, 255)]
    instances = np.zeros(semantic.shape, dtype=np.int32)
    if instance_ids is not None:
        raw = np.asarray(instance_ids, dtype=np.int64)
        is_instance = (raw >= CITYSCAPES_INSTANCE_DIVISOR) & _IS_THING[semantic]
        values, inverse = np.unique(raw[is_instance], return_inverse=True)
        instances[is_instance] = inverse.astype(np.int32) + 1
        if values.size >= PANOPTIC_LABEL_DIVISOR:
            raise DatasetError(f"{values.size} instances in one image; panoptic ids allow "
                               f"{PANOPTIC_LABEL_DIVISOR - 1}")
    panoptic = semantic.astype(np.int32) * PANOPTIC_LABEL_DIVISOR + instances
    panoptic[semantic == IGNORE_ID] = PANOPTIC_IGNORE
    return PanopticLabels(semantic, instances, panoptic)


def depth_from_disparity(disparity_png: np.ndarray, baseline_m: float, fx_px: float) -> np.ndarray:
    """Metric depth ``[H, W] float32`` (m, 0 = no value) from a Cityscapes ``*_disparity.png``.

    The PNG stores ``p = disparity * 256 + 1`` (uint16) with ``p = 0`` meaning invalid, so
    ``disparity = (p - 1) / 256`` px and ``depth = baseline * fx / disparity`` (``p <= 1``: none).
    """
    p = np.asarray(disparity_png, dtype=np.float64)
    disparity = np.where(p > 0, (p - 1.0) / 256.0, 0.0)
    valid = disparity > 0
    depth = np.zeros(p.shape, dtype=np.float32)
    depth[valid] = (baseline_m * fx_px / disparity[valid]).astype(np.float32)
    return depth
