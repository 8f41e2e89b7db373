"""Vehicle-level state of the primary camera: integrated odometry and the limited steering command.

The arithmetic the node's vehicle outputs need, without ROS: ego-motion of valid frame pairs is
chained into ``T_odom_base`` (REP 105) with the body twist of the step; the network's steering goes
through :class:`SteeringLimiter`. The node (``ros/vehicle.py``) and offline replay
(``eval/replay_offline.py``) both drive this class, so they compute the same values.

Times in seconds, angles in radians (positive left), transforms ``[4, 4] float64``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from unified_perception.runtime.engine import FrameResult
from unified_perception.runtime.odometry import OdometryIntegrator, twist_from_step
from unified_perception.runtime.steering import SteeringLimiter, SteeringLimits, SteeringOutput


class OdometryStep(NamedTuple):
    """One odometry update: pose of base_link in odom and the body twist in base_link."""

    T_odom_base: np.ndarray     # [4, 4] float64
    linear_mps: np.ndarray      # [3] float64, base_link
    angular_rps: np.ndarray     # [3] float64, base_link


class VehicleState:
    """Odometry integration and steering limits of one vehicle. Not thread-safe (callers lock).

    ``T_base_cam``: ``[4, 4]`` pose of the primary camera's optical frame in base_link.
    """

    def __init__(self, T_base_cam: np.ndarray, limits: SteeringLimits) -> None:
        self._odometry = OdometryIntegrator(T_base_cam)
        self._limiter = SteeringLimiter(limits)
        self._last_output_s: float | None = None

    @property
    def T_base_cam(self) -> np.ndarray:
        return self._odometry.T_base_cam

    @property
    def limits(self) -> SteeringLimits:
        return self._limiter.limits

    def set_limits(self, limits: SteeringLimits) -> None:
        self._limiter.set_limits(limits)

    def restart_steering(self) -> None:
        """Forget the steering history; odometry continues where it was (REP 105)."""
        self._limiter.reset()
        self._last_output_s = None

    def odometry(self, result: FrameResult) -> OdometryStep | None:
        """Integrate the frame's ego-motion; None for an invalid pair or a non-finite step.

        The twist is zero when the result has no time step (``dt_s`` None or 0).
        """
        if not result.pair_valid or result.T_cam_prev_cam_cur is None:
            return None
        rejected = self._odometry.rejected_steps
        T_odom_base = self._odometry.update(result.T_cam_prev_cam_cur)
        if self._odometry.rejected_steps != rejected:
            return None     # non-finite ego-motion: no pose, no twist
        step = self._odometry.last_step
        linear, angular = ((np.zeros(3), np.zeros(3)) if step is None or not result.dt_s
                           else twist_from_step(step, result.dt_s))
        return OdometryStep(T_odom_base, linear, angular)

    def steering(self, result: FrameResult, stamp_s: float, now_s: float) -> SteeringOutput | None:
        """The limited command for the frame's steering output (None when the model gave none).

        ``stamp_s``: the camera frame's stamp; ``now_s``: when the command is issued.
        """
        if result.steering_rad is None:
            return None
        self._last_output_s = now_s
        return self._limiter.update(result.steering_rad, stamp_s, now_s)

    def watchdog(self, now_s: float) -> SteeringOutput | None:
        """The held command when no steering output came for ``stale_timeout_s``, else None."""
        last = self._last_output_s
        if last is None or now_s - last <= self._limiter.limits.stale_timeout_s:
            return None
        self._last_output_s = now_s
        return self._limiter.update(None, now_s, now_s)
