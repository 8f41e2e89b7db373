"""Ray intersection with the canonical primitives, in each primitive's own (local) frame.

Shapes are centred at the local origin:

* ``BOX``: half extents ``(hx, hy, hz)``;
* ``CYLINDER``: axis along local z, radius ``hx``, half height ``hz`` (``hy`` is ignored);
* ``ELLIPSOID``: semi-axes ``(hx, hy, hz)``.

Rays are ``origin + t * direction`` with unnormalised directions; ``t`` is returned in the same
parameter, so a world ray whose optical-frame direction has z = 1 gets its optical depth back.
Misses are ``inf``. Hits closer than ``near`` (e.g. rays starting inside) are misses.

Vectors are passed by component (:data:`Vec3`: three arrays or scalars that broadcast together), so
a ray bundle sharing one origin (a camera) or one direction (the sun) costs no ``[M, 3]`` copies, and
the normal is only worked out when asked for (:data:`Intersector`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import IntEnum

import numpy as np

Component = np.ndarray | float
Vec3 = Sequence[Component]
"""``(x, y, z)``: each an array of any shape or a scalar; the three broadcast together"""
Intersector = Callable[..., tuple[np.ndarray, np.ndarray | None]]
"""``f(o, d, half, near=1e-3, want_normal=False) -> (t, normal)``: ``t`` has the broadcast shape
``[...]`` of the inputs; ``normal`` is ``[..., 3]`` (unit, local frame; meaningful where ``t`` is finite)
when ``want_normal``, else ``None``. ``half`` is a :data:`Vec3` too (per-ray extents are allowed)."""


class Shape(IntEnum):
    BOX = 0
    CYLINDER = 1
    ELLIPSOID = 2


def _safe(d: Component) -> Component:
    return np.where(d == 0.0, 1e-12, d)


def intersect_box(o: Vec3, d: Vec3, half: Vec3, near: float = 1e-3, want_normal: bool = False
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """Slab test (see :data:`Intersector`); the normal is that of the face the ray enters by."""
    t_in = t_out = axis = None
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(3):
            inv = 1.0 / _safe(d[k])
            t1 = (-half[k] - o[k]) * inv
            t2 = (half[k] - o[k]) * inv
            lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
            if t_in is None:
                t_in, t_out = lo, hi
                if want_normal:
                    axis = np.zeros(np.shape(lo), dtype=np.int8)
            else:
                if want_normal:
                    axis = np.where(lo > t_in, np.int8(k), axis)   # first maximum, like argmax
                t_in, t_out = np.maximum(t_in, lo), np.minimum(t_out, hi)
    t = np.where((t_out >= t_in) & (t_in > near), t_in, np.inf)
    if not want_normal:
        return t, None
    normal = np.zeros(t.shape + (3,))
    for k in range(3):
        sign = -np.sign(np.broadcast_to(d[k], t.shape))
        normal[..., k] = np.where(axis == k, sign, 0.0)
    return t, normal


def intersect_cylinder(o: Vec3, d: Vec3, half: Vec3, near: float = 1e-3, want_normal: bool = False
                       ) -> tuple[np.ndarray, np.ndarray | None]:
    """Capped cylinder along local z, radius ``half[0]``, half height ``half[2]``."""
    r, hz = half[0], half[2]
    a = d[0] * d[0] + d[1] * d[1]
    b = 2.0 * (o[0] * d[0] + o[1] * d[1])
    c = o[0] * o[0] + o[1] * o[1] - r * r
    disc = b * b - 4.0 * a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * a)
        z_side = o[2] + t_side * d[2]
        side_ok = (disc >= 0) & (a > 1e-12) & (np.abs(z_side) <= hz) & (t_side > near)
        cap_z = np.where(d[2] < 0, hz, -hz)             # the cap facing the ray
        t_cap = (cap_z - o[2]) / _safe(d[2])
        px = o[0] + t_cap * d[0]
        py = o[1] + t_cap * d[1]
    cap_ok = (px * px + py * py <= r * r) & (t_cap > near)
    t_side = np.where(side_ok, t_side, np.inf)
    t_cap = np.where(cap_ok, t_cap, np.inf)
    t = np.minimum(t_side, t_cap)
    if not want_normal:
        return t, None
    use_cap = t_cap < t_side
    finite = np.isfinite(t)
    normal = np.zeros(t.shape + (3,))
    for k in range(2):
        side_n = (o[k] + t_side * d[k]) / r
        normal[..., k] = np.where(use_cap | ~finite, 0.0, side_n)
    normal[..., 2] = np.where(use_cap & finite, np.sign(cap_z), 0.0)
    return t, normal


def intersect_ellipsoid(o: Vec3, d: Vec3, half: Vec3, near: float = 1e-3, want_normal: bool = False
                        ) -> tuple[np.ndarray, np.ndarray | None]:
    """Ellipsoid with semi-axes ``half``: a unit sphere after scaling."""
    os_ = [o[k] / half[k] for k in range(3)]
    ds = [d[k] / half[k] for k in range(3)]
    a = ds[0] * ds[0] + ds[1] * ds[1] + ds[2] * ds[2]
    b = 2.0 * (os_[0] * ds[0] + os_[1] * ds[1] + os_[2] * ds[2])
    c = os_[0] * os_[0] + os_[1] * os_[1] + os_[2] * os_[2] - 1.0
    disc = b * b - 4.0 * a * c
    t = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * a)
    hit = (disc >= 0) & (t > near)
    t = np.where(hit, t, np.inf)
    if not want_normal:
        return t, None
    t0 = np.where(hit, t, 0.0)
    normal = np.stack([np.broadcast_to((o[k] + t0 * d[k]) / (half[k] * half[k]), t.shape)
                       for k in range(3)], axis=-1)
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)
    return t, normal


INTERSECTORS: dict[Shape, Intersector] = {
    Shape.BOX: intersect_box, Shape.CYLINDER: intersect_cylinder, Shape.ELLIPSOID: intersect_ellipsoid}
