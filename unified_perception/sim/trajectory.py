"""The ego car's path: it keeps its lane, sometimes changes lane, and steers by a bicycle model.

The path is the trajectory of the rear-axle centre (``base_link`` origin). Under the kinematic
bicycle model with the rear axle on the path, the front-wheel steering angle is
``steering_rad = atan(wheelbase_m * curvature)`` (positive = left), with the path curvature in 1/m.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unified_perception.sim.geometry import planar_pose
from unified_perception.sim.road import STEP_M, RoadCurve


def lane_center_d(lane: int | np.ndarray, lane_width_m: float) -> np.ndarray:
    """Lateral offset (m) of the centre of ego-direction lane ``lane`` (0 = next to the centre line).

    Traffic drives on the right: ego-direction lanes have negative ``d``.
    """
    return -(np.asarray(lane, dtype=np.float64) + 0.5) * lane_width_m


def smoothstep5(x: np.ndarray) -> np.ndarray:
    """Quintic 0 -> 1 ramp with zero first and second derivatives at both ends."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (10.0 + x * (-15.0 + 6.0 * x))


@dataclass(frozen=True)
class EgoPath:
    """The rear-axle path, sampled densely along its own arc length ``sigma`` (m)."""

    sigma: np.ndarray      # [N] m, 0 at the frame-0 position
    xy: np.ndarray         # [N, 2] m, world
    yaw: np.ndarray        # [N] rad
    curvature: np.ndarray  # [N] 1/m
    road_s: np.ndarray     # [N] m, road arc length of each sample
    road_d: np.ndarray     # [N] m, lateral offset of each sample
    speed_mps: float
    wheelbase_m: float

    def state_at(self, time_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """World pose ``T_world_base`` ``[..., 4, 4]``, curvature ``[...]`` (1/m), steering ``[...]``
        (rad, positive left) and road ``s`` ``[...]`` at times ``time_s`` (s after frame 0)."""
        sig = self.speed_mps * np.asarray(time_s, dtype=np.float64)
        x = np.interp(sig, self.sigma, self.xy[:, 0])
        y = np.interp(sig, self.sigma, self.xy[:, 1])
        yaw = np.interp(sig, self.sigma, self.yaw)
        kappa = np.interp(sig, self.sigma, self.curvature)
        steering = np.arctan(self.wheelbase_m * kappa)
        return planar_pose(x, y, yaw), kappa, steering, np.interp(sig, self.sigma, self.road_s)


def plan_lateral_offset(rng: np.random.Generator, s: np.ndarray, s_start: float, s_end: float,
                        lanes: int, lane_width_m: float, change_probability: float,
                        change_length_m: float) -> tuple[np.ndarray, int, tuple[float, float] | None]:
    """Lateral offset ``d(s)`` ``[N]`` of the ego: its start lane and an optional lane change.

    Returns ``(d, start_lane, (s_from, s_to) of the change or None)``.
    """
    start_lane = int(rng.integers(0, lanes))
    d = np.full_like(s, lane_center_d(start_lane, lane_width_m))
    change = None
    if lanes > 1 and rng.random() < change_probability:
        target = start_lane + (1 if start_lane == 0 else -1 if start_lane == lanes - 1
                               else int(rng.choice([-1, 1])))
        span = max(s_end - s_start - change_length_m, 1.0)
        s_from = s_start + rng.uniform(0.05, 0.7) * span
        ramp = smoothstep5((s - s_from) / change_length_m)
        d = d + ramp * (lane_center_d(target, lane_width_m) - lane_center_d(start_lane, lane_width_m))
        change = (s_from, s_from + change_length_m)
    return d, start_lane, change


def build_ego_path(road: RoadCurve, d_of_s: np.ndarray, s_grid: np.ndarray, s_frame0: float,
                   speed_mps: float, wheelbase_m: float) -> EgoPath:
    """The rear-axle path through ``(s_grid, d_of_s)``, re-parameterised by its own arc length."""
    xy, _ = road.point_at(s_grid, d_of_s)
    seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    sigma = np.concatenate([[0.0], np.cumsum(seg)])
    sigma -= np.interp(s_frame0, s_grid, sigma)
    dxy = np.gradient(xy, sigma, axis=0)
    yaw = np.unwrap(np.arctan2(dxy[:, 1], dxy[:, 0]))
    curvature = np.gradient(yaw, sigma)
    # light smoothing: finite differences of a piecewise-linear interpolant are noisy at the
    # sampling step; a 1 m box filter leaves the (slowly varying) true curvature unchanged
    k = max(int(round(1.0 / STEP_M)), 1)
    kernel = np.ones(2 * k + 1) / (2 * k + 1)
    curvature = np.convolve(np.pad(curvature, k, mode="edge"), kernel, mode="valid")
    return EgoPath(sigma=sigma, xy=xy, yaw=yaw, curvature=curvature, road_s=s_grid, road_d=d_of_s,
                   speed_mps=speed_mps, wheelbase_m=wheelbase_m)
