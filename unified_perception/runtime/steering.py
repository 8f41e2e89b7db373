"""The steering limiter: what stands between the network's steering output and the car.

Angles in radians, positive = left (REP 103); times in seconds. Every output is finite, within
``±max_angle_rad``, and differs from the previous output by at most ``max_rate_rad_s`` times the
time (``now_s``) elapsed since it. Input that is missing, not finite, stale (older than
``stale_timeout_s`` at ``now_s``) or out of order is not used: the last safe value is held and the
reason given. :meth:`SteeringLimiter.decay` returns the command to straight (0 rad) at the rate
limit, for input that stays away (the watchdog of :class:`runtime.vehicle_state.VehicleState`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import NamedTuple


@dataclass(frozen=True)
class SteeringLimits:
    """Limits and smoothing. Raises ``ValueError`` naming a bad value (a dynamic parameter check).

    No defaults here: the node's values come from its parameter table (``config/car.yaml``).
    """

    max_angle_rad: float
    max_rate_rad_s: float
    smoothing_time_constant_s: float         # first-order low-pass; 0 = no smoothing
    stale_timeout_s: float

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            minimum_ok = number and (value >= 0.0 if f.name == "smoothing_time_constant_s" else value > 0.0)
            if not number or not math.isfinite(value) or not minimum_ok:
                bound = "zero or positive" if f.name == "smoothing_time_constant_s" else "positive"
                raise ValueError(f"steering limit '{f.name}' must be a finite {bound} number, got {value!r}")


class SteeringOutput(NamedTuple):
    """One limited command: ``angle_rad`` (finite, positive left), whether it is a held value, why."""

    angle_rad: float
    held: bool
    reason: str


class SteeringLimiter:
    """Clamps angle and rate, smooths, and holds the last safe value on bad input.

    ``update`` is called once per network output (or with ``raw_rad=None`` from a watchdog when no
    output came). ``stamp_s``: the stamp of the camera frame the raw value came from; ``now_s``: the
    time the command is issued (the node's clock).
    """

    def __init__(self, limits: SteeringLimits, initial_rad: float = 0.0) -> None:
        self.limits = limits
        self._angle = max(-limits.max_angle_rad, min(limits.max_angle_rad, float(initial_rad)))
        self._last_now: float | None = None
        self._last_stamp: float | None = None

    @property
    def angle_rad(self) -> float:
        """The last emitted (safe) angle."""
        return self._angle

    def set_limits(self, limits: SteeringLimits) -> None:
        """Take new limits; the held angle is clamped into the new angle range at once."""
        self.limits = limits
        self._angle = max(-limits.max_angle_rad, min(limits.max_angle_rad, self._angle))

    def reset(self, initial_rad: float = 0.0) -> None:
        """Forget the history (e.g. after re-activation) and restart at ``initial_rad``."""
        self.__init__(self.limits, initial_rad)

    def update(self, raw_rad: float | None, stamp_s: float, now_s: float) -> SteeringOutput:
        """Limit one raw steering angle; see the module docstring for the guarantees."""
        dt = 0.0
        if self._last_now is not None and math.isfinite(now_s):
            dt = max(0.0, now_s - self._last_now)
        if math.isfinite(now_s):
            self._last_now = now_s
        reason = self._rejection(raw_rad, stamp_s, now_s)
        if reason:
            return SteeringOutput(self._angle, True, reason)
        self._last_stamp = stamp_s
        lim = self.limits
        target = max(-lim.max_angle_rad, min(lim.max_angle_rad, float(raw_rad)))
        tau = lim.smoothing_time_constant_s
        alpha = 1.0 if tau == 0.0 else -math.expm1(-dt / tau)
        wanted = alpha * (target - self._angle)
        max_step = lim.max_rate_rad_s * dt
        step = max(-max_step, min(max_step, wanted))
        angle = max(-lim.max_angle_rad, min(lim.max_angle_rad, self._angle + step))
        if not math.isfinite(angle):
            return SteeringOutput(self._angle, True, "limited angle was not finite")
        notes = [note for note, applies in (("angle clamped", target != raw_rad),
                                            ("rate limited", step != wanted)) if applies]
        self._angle = angle
        return SteeringOutput(angle, False, ", ".join(notes) or "ok")

    def decay(self, now_s: float) -> SteeringOutput:
        """Move the command toward straight (0 rad) by at most ``max_rate_rad_s`` per second since
        the last output; used while no input comes. Always ``held``."""
        dt = 0.0
        if self._last_now is not None and math.isfinite(now_s):
            dt = max(0.0, now_s - self._last_now)
        if math.isfinite(now_s):
            self._last_now = now_s
        step = min(abs(self._angle), self.limits.max_rate_rad_s * dt)
        self._angle = math.copysign(abs(self._angle) - step, self._angle)
        return SteeringOutput(self._angle, True, "no steering input: returning to straight")

    def _rejection(self, raw_rad: float | None, stamp_s: float, now_s: float) -> str:
        if raw_rad is None:
            return "no steering input"
        if not math.isfinite(raw_rad):
            return f"steering input {raw_rad} is not finite"
        if not math.isfinite(stamp_s) or not math.isfinite(now_s):
            return f"time is not finite (stamp {stamp_s}, now {now_s})"
        age = now_s - stamp_s
        if age > self.limits.stale_timeout_s:
            return f"steering input is stale ({age:.3f} s old > {self.limits.stale_timeout_s:.3f} s)"
        if self._last_stamp is not None and stamp_s < self._last_stamp:
            self._last_stamp = None   # a time base reset (bag loop) is accepted from the next input on
            return "steering input is older than the previous one"
        return ""
