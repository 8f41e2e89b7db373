"""Per-pixel ground truth from a hit buffer: classes, instances, panoptic ids, motion and scene flow."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unified_perception.contract import CLASS_ID, PANOPTIC_LABEL_DIVISOR
from unified_perception.sim.layout import CrossSection
from unified_perception.sim.materials import GROUND_PRIM
from unified_perception.sim.raycast import HitBuffer


@dataclass(frozen=True)
class VisibleParts:
    """The primitives drawn in one frame, indexed like :attr:`HitBuffer.prim`."""

    class_id: np.ndarray        # [P] uint8
    instance: np.ndarray        # [P] int32, 0 for stuff
    moving: np.ndarray          # [P] bool, part of an independently moving object
    T_world_part: np.ndarray    # [P, 4, 4] at t
    T_world_part_prev: np.ndarray  # [P, 4, 4] at t - 1/fps


def ground_classes(d_m: np.ndarray, cross: CrossSection) -> np.ndarray:
    """Class ids ``uint8`` of ground points at lateral offsets ``d_m``: road, sidewalk or terrain."""
    a = np.abs(d_m)
    return np.where(a < cross.curb_m, CLASS_ID["road"],
                    np.where(a < cross.sidewalk_outer_m, CLASS_ID["sidewalk"], CLASS_ID["terrain"])
                    ).astype(np.uint8)


def labels(hits: HitBuffer, parts: VisibleParts, ground_class: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Semantic ``[H, W] uint8``, instances ``[H, W] int32``, panoptic ``[H, W] int32`` and the
    motion mask ``[H, W] bool``. ``ground_class`` holds the class of every ground pixel, in
    row-major order of ``hits.prim == GROUND_PRIM``."""
    prim = hits.prim
    on_part = prim >= 0
    idx = prim[on_part]
    semantic = np.full(prim.shape, CLASS_ID["sky"], dtype=np.uint8)
    semantic[prim == GROUND_PRIM] = ground_class
    semantic[on_part] = parts.class_id[idx]
    instances = np.zeros(prim.shape, dtype=np.int32)
    instances[on_part] = parts.instance[idx]
    panoptic = semantic.astype(np.int32) * PANOPTIC_LABEL_DIVISOR + instances
    motion = np.zeros(prim.shape, dtype=bool)
    motion[on_part] = parts.moving[idx]
    return semantic, instances, panoptic, motion


def scene_flow(hits: HitBuffer, parts: VisibleParts, points_world: np.ndarray, R_cam_world: np.ndarray
               ) -> np.ndarray:
    """Independent motion ``[H, W, 3] float32`` (m) of each pixel's point from t-1 to t, in the
    optical frame of t: ``R_cam_world (X_t - X_{t-1})`` where ``X_{t-1}`` is where the same
    material point of its primitive was one frame earlier. Exactly zero on static surfaces and sky.
    """
    flow = np.zeros(points_world.shape, dtype=np.float32)
    prim = hits.prim
    moving_px = prim >= 0
    moving_px[moving_px] = parts.moving[prim[moving_px]]
    if not moving_px.any():
        return flow
    idx = prim[moving_px]
    M = parts.T_world_part_prev @ np.linalg.inv(parts.T_world_part)     # [P, 4, 4]: X_t -> X_{t-1}
    X = points_world[moving_px]
    X_prev = np.einsum("nij,nj->ni", M[idx, :3, :3], X) + M[idx, :3, 3]
    flow[moving_px] = ((X - X_prev) @ R_cam_world.T).astype(np.float32)
    return flow
