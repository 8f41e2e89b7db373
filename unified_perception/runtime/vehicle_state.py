"""Vehicle-level state of the primary camera: integrated odometry and the limited steering command.

The arithmetic the node's vehicle outputs need, without ROS: ego-motion of valid frame pairs is
chained into ``T_odom_base`` (REP 105) with the body twist of the step; the network's steering goes
through :class:`SteeringLimiter`.

Faults: a frame stamped before the previous one (a bag loop, a clock reset) restarts odometry at
identity (the next step says ``restarted``, so the path starts again); a forward gap only skips
the step across it (the engine marks that pair invalid). Without a steering output for
``stale_timeout_s`` the watchdog holds the last command; after ``2 * stale_timeout_s`` it returns
the command to straight at ``max_rate_rad_s``. A clock that jumps back restarts that timeout. The node (``ros/vehicle.py``) and offline replay
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
    restarted: bool = False     # first step after odometry restarted at identity (time went back)


class VehicleState:
    """Odometry integration and steering limits of one vehicle. Not thread-safe (callers lock).

    ``T_base_cam``: ``[4, 4]`` pose of the primary camera's optical frame in base_link.
    """

    def __init__(self, T_base_cam: np.ndarray, limits: SteeringLimits) -> None:
        self._odometry = OdometryIntegrator(T_base_cam)
        self._limiter = SteeringLimiter(limits)
        self._last_input_s: float | None = None      # last steering output of the network
        self._last_stamp_s: float | None = None      # stamp of the last frame given to odometry
        self._odometry_restarted = False

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
        self._last_input_s = None

    def odometry(self, result: FrameResult) -> OdometryStep | None:
        """Integrate the frame's ego-motion; None for an invalid pair or a non-finite step.

        The twist is zero when the result has no time step (``dt_s`` None or 0). A frame stamped
        before the previous one restarts odometry at identity.
        """
        if self._last_stamp_s is not None and result.stamp_s < self._last_stamp_s:
            self._odometry.reset()
            self._odometry_restarted = True
        self._last_stamp_s = result.stamp_s
        if not result.pair_valid or result.T_cam_prev_cam_cur is None:
            return None
        T_odom_base = self._odometry.update(result.T_cam_prev_cam_cur)
        if T_odom_base is None:
            return None     # non-finite ego-motion: no pose, no twist
        step = self._odometry.last_step
        linear, angular = ((np.zeros(3), np.zeros(3)) if step is None or not result.dt_s
                           else twist_from_step(step, result.dt_s))
        restarted, self._odometry_restarted = self._odometry_restarted, False
        return OdometryStep(T_odom_base, linear, angular, restarted)

    def steering(self, result: FrameResult, stamp_s: float, now_s: float) -> SteeringOutput | None:
        """The limited command for the frame's steering output (None when the model gave none).

        ``stamp_s``: the camera frame's stamp; ``now_s``: when the command is issued.
        """
        if result.steering_rad is None:
            return None
        self._last_input_s = now_s
        return self._limiter.update(result.steering_rad, stamp_s, now_s)

    def watchdog(self, now_s: float) -> SteeringOutput | None:
        """The command while no steering output came for ``stale_timeout_s``, else None.

        Held at its last value until ``2 * stale_timeout_s`` after the last output, then returning
        to straight at ``max_rate_rad_s`` (one command per call, every call while stale).
        """
        last = self._last_input_s
        if last is None:
            return None
        if now_s < last:        # the clock went back (a bag loop under use_sim_time)
            self._last_input_s = now_s
            return None
        timeout = self._limiter.limits.stale_timeout_s
        if now_s - last <= timeout:
            return None
        if now_s - last > 2.0 * timeout:
            return self._limiter.decay(now_s)
        return self._limiter.update(None, now_s, now_s)
