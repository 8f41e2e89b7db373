"""Cast one ray per pixel into the ground plane and the visible primitives (a z-buffer).

Work per primitive is confined to the screen rectangle its bounding box projects to, and primitives
are visited nearest first so that hidden ones are skipped after one comparison. The depth pass only
keeps the nearest ``t`` and primitive per pixel; hit points and normals are worked out afterwards for
the winning pixels alone. Pixel rays are separable (:func:`grid_ray_components`), so a primitive's
rays in its own frame cost two multiply-adds per component. No per-pixel loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unified_perception.sim.camera import (
    PinholeCamera,
    grid_ray_components,
    pixel_ray_components,
)
from unified_perception.sim.materials import GROUND_PRIM, SKY_PRIM
from unified_perception.sim.primitives import INTERSECTORS, Shape

GROUND_FAR_M = 3000.0
"""the ground plane ends here (optical depth, m); beyond it the rays see sky"""

_CORNER_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)],
                         dtype=np.float64)


@dataclass
class HitBuffer:
    """What each pixel's ray hit first: ``[H, W]`` images, and ``[N, 3]`` rows for the ``N`` pixels
    on a primitive (``prim >= 0``) in row-major pixel order."""

    depth_m: np.ndarray        # [H, W] float64, optical depth; inf for sky
    prim: np.ndarray           # [H, W] int32, index into the primitive list, GROUND_PRIM or SKY_PRIM
    part_local: np.ndarray     # [N, 3] float64, hit point in the primitive's frame (m)
    part_normal: np.ndarray    # [N, 3] float64, unit normal in the primitive's frame


def box_corners(T_a_part: np.ndarray, half: np.ndarray) -> np.ndarray:
    """``[P, 8, 3]`` corners of the primitives' bounding boxes ``half [P, 3]`` posed by ``T_a_part``
    ``[P, 4, 4]``, in frame a."""
    corners = _CORNER_SIGNS[None] * half[:, None, :]                       # [P, 8, 3]
    return np.einsum("pij,pkj->pki", T_a_part[:, :3, :3], corners) + T_a_part[:, None, :3, 3]


def cast_rays(camera: PinholeCamera, T_world_cam: np.ndarray, T_world_part: np.ndarray,
              shape: np.ndarray, half: np.ndarray) -> HitBuffer:
    """Ray-cast one frame through every pixel of ``camera`` posed at ``T_world_cam [4, 4]``.

    ``T_world_part``: ``[P, 4, 4]`` poses of the primitives; ``shape`` ``[P]``, ``half`` ``[P, 3]`` (m).
    """
    H, W = camera.height, camera.width
    x, y = camera.normalised_coords()
    R_wc, origin = T_world_cam[:3, :3], T_world_cam[:3, 3]
    depth = np.full((H, W), np.inf)
    prim = np.full((H, W), SKY_PRIM, dtype=np.int32)

    rays_z = grid_ray_components(R_wc, x, y)[2]                            # [H, W] world z
    down = rays_z < 0
    with np.errstate(divide="ignore"):
        t_ground = np.where(down, -origin[2] / np.where(down, rays_z, -1.0), np.inf)
    ground = t_ground < GROUND_FAR_M
    np.copyto(depth, t_ground, where=ground)
    prim[ground] = GROUND_PRIM

    if len(shape) == 0:
        return HitBuffer(depth, prim, np.zeros((0, 3)), np.zeros((0, 3)))
    R_parts = T_world_part[:, :3, :3]
    M = np.einsum("pji,jk->pik", R_parts, R_wc)                            # R_part_cam [P, 3, 3]
    O = np.einsum("pji,pj->pi", R_parts, origin - T_world_part[:, :3, 3])  # camera centre, local [P, 3]
    T_cam_world = np.linalg.inv(T_world_cam)
    rects, z_near, visible = camera.bounding_rects(box_corners(T_cam_world @ T_world_part, half))
    for i in np.flatnonzero(visible)[np.argsort(z_near[visible], kind="stable")]:
        y0, y1, x0, x1 = rects[i]
        depth_view = depth[y0:y1, x0:x1]
        if z_near[i] >= depth_view.max():
            continue  # entirely behind what is already drawn
        d_local = grid_ray_components(M[i], x[x0:x1], y[y0:y1])
        t, _ = INTERSECTORS[Shape(int(shape[i]))](O[i], d_local, half[i])
        closer = t < depth_view
        np.copyto(depth_view, t, where=closer)
        np.copyto(prim[y0:y1, x0:x1], i, where=closer)
    local, normal = _surface_at_hits(depth, prim, x, y, M, O, shape, half)
    return HitBuffer(depth_m=depth, prim=prim, part_local=local, part_normal=normal)


def _surface_at_hits(depth: np.ndarray, prim: np.ndarray, x: np.ndarray, y: np.ndarray, M: np.ndarray,
                     O: np.ndarray, shape: np.ndarray, half: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Local hit points and normals ``[N, 3]`` of the pixels on a primitive (row-major order).

    The rays are rebuilt bitwise as in the depth pass, so the intersectors' normals match its ``t``.
    """
    rows, cols = np.nonzero(prim >= 0)
    idx = prim[rows, cols]
    t = depth[rows, cols]
    d = pixel_ray_components(np.take(M, idx, axis=0), x[cols], y[rows])
    o = list(np.take(O, idx, axis=0).T)
    local = np.stack([o[k] + t * d[k] for k in range(3)], axis=-1)
    normal = np.zeros((len(idx), 3))
    kind = shape[idx]
    for s, intersect in INTERSECTORS.items():
        sel = np.flatnonzero(kind == s)
        if len(sel):
            h = np.take(half, idx[sel], axis=0)
            _, normal[sel] = intersect([c[sel] for c in o], [c[sel] for c in d],
                                       (h[:, 0], h[:, 1], h[:, 2]), want_normal=True)
    return local, normal
