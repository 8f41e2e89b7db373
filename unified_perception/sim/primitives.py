"""Ray intersection with the canonical primitives, in each primitive's own (local) frame.

Shapes are centred at the local origin:

* ``BOX``: half extents ``(hx, hy, hz)``;
* ``CYLINDER``: axis along local z, radius ``hx``, half height ``hz`` (``hy`` is ignored);
* ``ELLIPSOID``: semi-axes ``(hx, hy, hz)``.

Rays are ``origin + t * direction`` with unnormalised directions; ``t`` is returned in the same
parameter, so a world ray whose optical-frame direction has z = 1 gets its optical depth back.
Misses are ``inf``. Hits closer than ``near`` (e.g. rays starting inside) are misses.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Shape(IntEnum):
    BOX = 0
    CYLINDER = 1
    ELLIPSOID = 2


def intersect_box(o: np.ndarray, d: np.ndarray, half: np.ndarray, near: float = 1e-3
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Slab test. ``o``, ``d``: ``[M, 3]``; ``half``: ``[3]``. Returns ``t [M]`` and normals ``[M, 3]``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(d == 0.0, 1e-12, d)
        t1 = (-half - o) * inv
        t2 = (half - o) * inv
    t_lo = np.minimum(t1, t2)
    t_hi = np.maximum(t1, t2)
    axis = np.argmax(t_lo, axis=1)
    t_in = np.take_along_axis(t_lo, axis[:, None], 1)[:, 0]
    t_out = t_hi.min(axis=1)
    hit = (t_out >= t_in) & (t_in > near)
    t = np.where(hit, t_in, np.inf)
    normal = np.zeros_like(o)
    sign = -np.sign(np.take_along_axis(d, axis[:, None], 1)[:, 0])
    normal[np.arange(len(o)), axis] = sign
    return t, normal


def intersect_cylinder(o: np.ndarray, d: np.ndarray, half: np.ndarray, near: float = 1e-3
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Capped cylinder along local z, radius ``half[0]``, half height ``half[2]``."""
    r, hz = half[0], half[2]
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = 2.0 * (o[:, 0] * d[:, 0] + o[:, 1] * d[:, 1])
    c = o[:, 0] ** 2 + o[:, 1] ** 2 - r * r
    disc = b * b - 4.0 * a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * a)
        z_side = o[:, 2] + t_side * d[:, 2]
        side_ok = (disc >= 0) & (a > 1e-12) & (np.abs(z_side) <= hz) & (t_side > near)
        cap_z = np.where(d[:, 2] < 0, hz, -hz)          # the cap facing the ray
        t_cap = (cap_z - o[:, 2]) / np.where(d[:, 2] == 0, 1e-12, d[:, 2])
        px = o[:, 0] + t_cap * d[:, 0]
        py = o[:, 1] + t_cap * d[:, 1]
    cap_ok = (px * px + py * py <= r * r) & (t_cap > near)
    t_side = np.where(side_ok, t_side, np.inf)
    t_cap = np.where(cap_ok, t_cap, np.inf)
    use_cap = t_cap < t_side
    t = np.minimum(t_side, t_cap)
    hit_xy = o[:, :2] + t_side[:, None] * d[:, :2]
    normal = np.zeros_like(o)
    normal[:, :2] = np.where(use_cap[:, None], 0.0, hit_xy / r)
    normal[:, 2] = np.where(use_cap, np.sign(cap_z), 0.0)
    normal[~np.isfinite(t)] = 0.0
    return t, normal


def intersect_ellipsoid(o: np.ndarray, d: np.ndarray, half: np.ndarray, near: float = 1e-3
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Ellipsoid with semi-axes ``half``: a unit sphere after scaling."""
    os_ = o / half
    ds = d / half
    a = np.einsum("ij,ij->i", ds, ds)
    b = 2.0 * np.einsum("ij,ij->i", os_, ds)
    c = np.einsum("ij,ij->i", os_, os_) - 1.0
    disc = b * b - 4.0 * a * c
    t = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * a)
    hit = (disc >= 0) & (t > near)
    t = np.where(hit, t, np.inf)
    p = o + np.where(hit, t, 0.0)[:, None] * d
    normal = p / (half * half)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    return t, normal


INTERSECTORS = {Shape.BOX: intersect_box, Shape.CYLINDER: intersect_cylinder,
                Shape.ELLIPSOID: intersect_ellipsoid}
