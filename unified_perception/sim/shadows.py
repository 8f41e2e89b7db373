"""Sun shadows cast by the primitives onto the ground.

For every ground point a shadow ray goes towards the sun. Candidate primitives per point come from a
k-d tree over the points projected onto the plane perpendicular to the sun direction (a primitive
can only shade points within its bounding radius of its centre's projection); exact intersection
then runs on the candidates only.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from unified_perception.sim.primitives import INTERSECTORS, Shape


def ground_shadow(points_world: np.ndarray, sun_dir_world: np.ndarray, T_world_part: np.ndarray,
                  shape: np.ndarray, half: np.ndarray) -> np.ndarray:
    """``[M] bool``: True where the segment from a point ``[M, 3]`` towards the sun hits a primitive."""
    shadow = np.zeros(len(points_world), dtype=bool)
    if len(points_world) == 0 or len(shape) == 0 or sun_dir_world[2] <= 0:
        return shadow
    L = sun_dir_world / np.linalg.norm(sun_dir_world)
    e1 = np.cross(L, [0.0, 0.0, 1.0] if abs(L[2]) < 0.9 else [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(L, e1)
    basis = np.stack([e1, e2], axis=1)                                     # [3, 2]
    tree = cKDTree(points_world @ basis)
    centres = T_world_part[:, :3, 3]
    radius = np.linalg.norm(half, axis=1)
    candidates = tree.query_ball_point(centres @ basis, radius)
    for i, idx in enumerate(candidates):
        if not idx:
            continue
        idx = np.asarray(idx)
        idx = idx[~shadow[idx]]
        if len(idx) == 0:
            continue
        R, c = T_world_part[i, :3, :3], T_world_part[i, :3, 3]
        o_local = (points_world[idx] - c) @ R
        t, _ = INTERSECTORS[Shape(int(shape[i]))](o_local.T, L @ R, half[i])
        shadow[idx[np.isfinite(t)]] = True
    return shadow
