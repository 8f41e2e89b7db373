"""Cast one ray per pixel into the ground plane and the visible primitives (a z-buffer).

Work per primitive is confined to the screen rectangle its bounding box projects to, and primitives
are visited nearest first so that hidden ones are skipped after one comparison. No per-pixel loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unified_perception.sim.camera import PinholeCamera
from unified_perception.sim.materials import GROUND_PRIM, SKY_PRIM
from unified_perception.sim.primitives import INTERSECTORS, Shape

GROUND_FAR_M = 3000.0
"""the ground plane ends here (optical depth, m); beyond it the rays see sky"""

_CORNER_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)],
                         dtype=np.float64)


@dataclass
class HitBuffer:
    """What each pixel's ray hit first. Shapes ``[H, W]`` / ``[H, W, 3]``."""

    depth_m: np.ndarray        # float64, optical depth; inf for sky
    prim: np.ndarray           # int32, index into the primitive list, GROUND_PRIM or SKY_PRIM
    local: np.ndarray          # float64, hit point in the primitive's frame (world frame on the ground)
    normal_local: np.ndarray   # float64, unit normal in the primitive's frame (ground: +z)


def _screen_rects(camera: PinholeCamera, T_cam_part: np.ndarray, half: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel rectangles ``[P, 4]`` (y0, y1, x0, x1), nearest depth ``[P]`` and a visible flag ``[P]``."""
    corners = _CORNER_SIGNS[None] * half[:, None, :]                       # [P, 8, 3]
    pts = np.einsum("pij,pkj->pki", T_cam_part[:, :3, :3], corners) + T_cam_part[:, None, :3, 3]
    z = pts[..., 2]
    z_min, z_max = z.min(axis=1), z.max(axis=1)
    uv, _ = camera.project(pts)
    in_front = (z > 0.05)[..., None]
    lo = np.where(in_front, uv, np.inf).min(axis=1)                        # [P, 2]
    hi = np.where(in_front, uv, -np.inf).max(axis=1)
    lo = np.clip(lo, -1e6, 1e6)
    hi = np.clip(hi, -1e6, 1e6)
    x0, y0 = np.floor(lo[:, 0]) - 1, np.floor(lo[:, 1]) - 1
    x1, y1 = np.ceil(hi[:, 0]) + 2, np.ceil(hi[:, 1]) + 2
    straddles = z_min <= 0.05  # a corner behind the camera: the projection is unbounded
    x0 = np.where(straddles, 0, x0)
    y0 = np.where(straddles, 0, y0)
    x1 = np.where(straddles, camera.width, x1)
    y1 = np.where(straddles, camera.height, y1)
    rects = np.stack([np.clip(y0, 0, camera.height), np.clip(y1, 0, camera.height),
                      np.clip(x0, 0, camera.width), np.clip(x1, 0, camera.width)], axis=1)
    rects = rects.astype(np.int64)
    visible = (z_max > 0.05) & (rects[:, 1] > rects[:, 0]) & (rects[:, 3] > rects[:, 2])
    return rects, np.maximum(z_min, 0.0), visible


def cast_rays(camera: PinholeCamera, rays_cam: np.ndarray, T_world_cam: np.ndarray,
              T_world_part: np.ndarray, shape: np.ndarray, half: np.ndarray) -> HitBuffer:
    """Ray-cast one frame.

    ``rays_cam``: ``[H, W, 3]`` optical-frame directions with z = 1 (:meth:`PinholeCamera.pixel_rays`).
    ``T_world_part``: ``[P, 4, 4]`` poses of the primitives; ``shape`` ``[P]``, ``half`` ``[P, 3]``.
    """
    H, W = camera.height, camera.width
    R_wc, origin = T_world_cam[:3, :3], T_world_cam[:3, 3]
    rays = rays_cam @ R_wc.T                                               # [H, W, 3] world
    depth = np.full((H, W), np.inf)
    prim = np.full((H, W), SKY_PRIM, dtype=np.int32)
    local = np.zeros((H, W, 3))
    normal = np.zeros((H, W, 3))

    down = rays[..., 2] < 0
    with np.errstate(divide="ignore"):
        t_ground = np.where(down, -origin[2] / np.where(down, rays[..., 2], -1.0), np.inf)
    ground = t_ground < GROUND_FAR_M
    depth[ground] = t_ground[ground]
    prim[ground] = GROUND_PRIM
    local[ground] = origin + t_ground[ground][:, None] * rays[ground]
    normal[ground] = (0.0, 0.0, 1.0)

    if len(shape):
        T_cam_world = np.linalg.inv(T_world_cam)
        rects, z_near, visible = _screen_rects(camera, T_cam_world @ T_world_part, half)
        for i in np.flatnonzero(visible)[np.argsort(z_near[visible], kind="stable")]:
            y0, y1, x0, x1 = rects[i]
            depth_view = depth[y0:y1, x0:x1]
            if z_near[i] >= depth_view.max():
                continue  # entirely behind what is already drawn
            R, c = T_world_part[i, :3, :3], T_world_part[i, :3, 3]
            d_local = rays[y0:y1, x0:x1].reshape(-1, 3) @ R
            o_local = np.broadcast_to(R.T @ (origin - c), d_local.shape)
            t, n = INTERSECTORS[Shape(int(shape[i]))](o_local, d_local, half[i])
            closer = t < depth_view.reshape(-1)
            if not closer.any():
                continue
            mask = closer.reshape(depth_view.shape)
            depth_view[mask] = t[closer]
            prim[y0:y1, x0:x1][mask] = i
            local[y0:y1, x0:x1][mask] = o_local[closer] + t[closer, None] * d_local[closer]
            normal[y0:y1, x0:x1][mask] = n[closer]
    return HitBuffer(depth_m=depth, prim=prim, local=local, normal_local=normal)
