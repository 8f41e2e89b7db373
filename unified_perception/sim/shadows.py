"""Sun shadows cast by the primitives onto the ground.

For every ground pixel a shadow ray goes from its point towards the sun. A primitive can only shade
ground points inside its shadow footprint: the corners of its bounding box slid along the sun
direction onto the ground plane (z = 0) span a convex region that contains it. That region's screen
rectangle gives the candidate pixels, the same way the depth pass finds a primitive's pixels; exact
intersection then runs over that rectangle, with the ground points rebuilt in the primitive's frame
from the separable pixel rays (no gathers, no per-point matrix products).
"""

from __future__ import annotations

import numpy as np

from unified_perception.sim.camera import PinholeCamera, grid_ray_components
from unified_perception.sim.primitives import INTERSECTORS, Shape
from unified_perception.sim.raycast import box_corners

CLIP_Z_M = 0.1
"""footprints are clipped to optical depth >= this (m); the ground is always farther from the camera"""


def _clip_in_front(points_cam: np.ndarray, z_clip: float) -> tuple[np.ndarray, np.ndarray]:
    """Points ``[P, K + K*K, 3]`` and a valid flag ``[P, K + K*K]`` spanning the part of each set's
    convex hull ``[P, K, 3]`` with optical z >= ``z_clip``: the points in front, and where the
    segments from those to the points behind cross the plane (a clipped hull's only new corners)."""
    z = points_cam[..., 2]
    front = z >= z_clip
    a, b = points_cam[:, :, None, :], points_cam[:, None, :, :]                 # [P, K, K, 3]
    za, zb = z[:, :, None], z[:, None, :]
    crosses = front[:, :, None] & ~front[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(crosses, (za - z_clip) / (za - zb), 0.0)[..., None]
    cut = a + s * (b - a)
    cut[..., 2] = np.where(crosses, z_clip, cut[..., 2])                  # exactly on the plane
    P, K = z.shape
    points = np.concatenate([points_cam, cut.reshape(P, K * K, 3)], axis=1)
    return points, np.concatenate([front, crosses.reshape(P, K * K)], axis=1)


def ground_shadow(camera: PinholeCamera, T_world_cam: np.ndarray, depth_m: np.ndarray,
                  ground: np.ndarray, sun_dir_world: np.ndarray, T_world_part: np.ndarray,
                  shape: np.ndarray, half: np.ndarray) -> np.ndarray:
    """``[H, W] bool``: True on ground pixels whose segment towards the sun hits a primitive.

    ``depth_m``: ``[H, W]`` optical depth (m) of the camera posed at ``T_world_cam [4, 4]``;
    ``ground``: ``[H, W] bool`` the pixels on the ground plane (z = 0); ``T_world_part``:
    ``[P, 4, 4]``, ``shape`` ``[P]``, ``half`` ``[P, 3]`` the primitives.
    """
    shadow = np.zeros(ground.shape, dtype=bool)
    if not ground.any() or len(shape) == 0 or sun_dir_world[2] <= 0:
        return shadow
    L = sun_dir_world / np.linalg.norm(sun_dir_world)
    corners = box_corners(T_world_part, half)                              # [P, 8, 3] world
    footprint = corners - corners[..., 2:3] / L[2] * L                     # slid onto z = 0
    T_cam_world = np.linalg.inv(T_world_cam)
    footprint_cam = footprint @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
    clipped, valid = _clip_in_front(footprint_cam, CLIP_Z_M)
    rects, _, visible = camera.bounding_rects(clipped, valid=valid)
    x, y = camera.normalised_coords()
    R_wc, origin = T_world_cam[:3, :3], T_world_cam[:3, 3]
    t_ground = np.where(ground, depth_m, 0.0)
    for i in np.flatnonzero(visible):
        y0, y1, x0, x1 = rects[i]
        open_ground = ground[y0:y1, x0:x1] & ~shadow[y0:y1, x0:x1]
        if not open_ground.any():
            continue  # no ground here, or all of it is shaded already
        R, c = T_world_part[i, :3, :3], T_world_part[i, :3, 3]
        ray = grid_ray_components(R.T @ R_wc, x[x0:x1], y[y0:y1])          # local frame
        cam = R.T @ (origin - c)
        t_view = t_ground[y0:y1, x0:x1]
        o_local = [cam[k] + t_view * ray[k] for k in range(3)]           # ground points, local
        t, _ = INTERSECTORS[Shape(int(shape[i]))](o_local, L @ R, half[i])
        shadow[y0:y1, x0:x1] |= open_ground & np.isfinite(t)
    return shadow
