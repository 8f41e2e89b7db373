"""The road: a planar centreline of straight, clothoid and arc pieces, and its (s, d) road frame.

``s`` is the arc length along the centreline (m), ``d`` the signed lateral offset (m, positive to the
left of the driving direction of increasing ``s``). The centreline is sampled densely; positions,
headings and curvatures between samples are interpolated linearly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

STEP_M = 0.25
"""sampling step of the centreline (m)"""


@dataclass(frozen=True)
class RoadCurve:
    """A centreline sampled every :data:`STEP_M` metres, starting at ``s = s[0]``."""

    s: np.ndarray          # [N] m
    xy: np.ndarray         # [N, 2] m, world frame
    heading: np.ndarray    # [N] rad, world yaw of the tangent
    curvature: np.ndarray  # [N] 1/m, positive = turning left

    @property
    def length_m(self) -> float:
        return float(self.s[-1] - self.s[0])

    def _interp(self, s: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.interp(s, self.s, values)

    def frame_at(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centre ``[..., 2]``, heading ``[...]`` (rad) and curvature ``[...]`` (1/m) at arc length ``s``."""
        s = np.asarray(s, dtype=np.float64)
        x = self._interp(s, self.xy[:, 0])
        y = self._interp(s, self.xy[:, 1])
        heading = self._interp(s, self.heading)
        return np.stack([x, y], axis=-1), heading, self._interp(s, self.curvature)

    def point_at(self, s: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World ``[..., 2]`` position at road coordinates ``(s, d)`` and the road heading there."""
        centre, heading, _ = self.frame_at(s)
        d = np.asarray(d, dtype=np.float64)
        normal = np.stack([-np.sin(heading), np.cos(heading)], axis=-1)
        return centre + d[..., None] * normal, heading

    def to_road_frame(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Road coordinates ``(s, d)`` (each ``[...]``, m) of world points ``[..., 2]``.

        Nearest centreline sample, refined by projecting onto its tangent. Exact to well under a
        centimetre for the curvatures used here.
        """
        flat = xy.reshape(-1, 2)
        _, idx = self._tree.query(flat)
        rel = flat - self.xy[idx]
        c, s_ = np.cos(self.heading[idx]), np.sin(self.heading[idx])
        along = rel[:, 0] * c + rel[:, 1] * s_
        across = -rel[:, 0] * s_ + rel[:, 1] * c
        # first-order curvature correction of the arc length
        s = self.s[idx] + along / np.maximum(1.0 - self.curvature[idx] * across, 0.2)
        return s.reshape(xy.shape[:-1]), across.reshape(xy.shape[:-1])

    @property
    def _tree(self) -> cKDTree:
        tree = self.__dict__.get("_kdtree")
        if tree is None:
            tree = cKDTree(self.xy)
            object.__setattr__(self, "_kdtree", tree)
        return tree


def curvature_profile(rng: np.random.Generator, length_m: float, straight_first_m: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Knots ``(s, kappa)`` of a piecewise-linear curvature: straights, clothoid ramps and arcs.

    Radii are drawn from 60..400 m; ramps (clothoids) are 15..40 m long.
    """
    knots_s = [0.0, straight_first_m]
    knots_k = [0.0, 0.0]
    s = straight_first_m
    while s < length_m:
        kind = rng.choice(["straight", "arc"], p=[0.35, 0.65])
        if kind == "straight":
            length = rng.uniform(20.0, 70.0)
            ramp = rng.uniform(15.0, 40.0)
            knots_s += [s + ramp, s + ramp + length]
            knots_k += [0.0, 0.0]
        else:
            radius = rng.uniform(60.0, 400.0)
            kappa = rng.choice([-1.0, 1.0]) / radius
            ramp = rng.uniform(15.0, 40.0)
            length = rng.uniform(20.0, 80.0)
            knots_s += [s + ramp, s + ramp + length]
            knots_k += [kappa, kappa]
        s = knots_s[-1]
    return np.asarray(knots_s), np.asarray(knots_k)


def build_road(rng: np.random.Generator, length_m: float, start_s_m: float = -60.0,
               straight_first_m: float = 20.0) -> RoadCurve:
    """A random centreline from ``start_s_m`` to ``length_m``; at ``s = 0`` it passes the origin heading +x."""
    knots_s, knots_k = curvature_profile(rng, length_m + 10.0, straight_first_m)
    s = np.arange(start_s_m, length_m + STEP_M, STEP_M)
    kappa = np.interp(s, knots_s, knots_k)  # straight before s = 0
    # heading and position by trapezoidal integration from s = 0
    dtheta = 0.5 * (kappa[1:] + kappa[:-1]) * STEP_M
    heading = np.concatenate([[0.0], np.cumsum(dtheta)])
    i0 = int(np.argmin(np.abs(s)))
    heading -= heading[i0]
    dx = 0.5 * (np.cos(heading[1:]) + np.cos(heading[:-1])) * STEP_M
    dy = 0.5 * (np.sin(heading[1:]) + np.sin(heading[:-1])) * STEP_M
    xy = np.stack([np.concatenate([[0.0], np.cumsum(dx)]), np.concatenate([[0.0], np.cumsum(dy)])], -1)
    xy -= xy[i0]
    return RoadCurve(s=s, xy=xy, heading=heading, curvature=kappa)
