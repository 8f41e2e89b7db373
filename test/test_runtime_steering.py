"""The steering limiter: angle and rate limits hold on any input, bad input is never used."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unified_perception.runtime.steering import SteeringLimiter, SteeringLimits

LIMITS = SteeringLimits(max_angle_rad=0.4, max_rate_rad_s=0.8, smoothing_time_constant_s=0.05,
                        stale_timeout_s=0.2)


def test_limits_hold_on_random_input_with_bad_values_mixed_in() -> None:
    rng = np.random.default_rng(7)
    limiter = SteeringLimiter(LIMITS)
    now, previous, previous_now = 0.0, limiter.angle_rad, None
    held = 0
    for _ in range(5000):
        now += float(rng.uniform(0.0, 0.1))
        kind = rng.integers(0, 10)
        raw = float(rng.normal(0.0, 2.0))
        if kind == 0:
            raw = float(rng.choice([math.nan, math.inf, -math.inf]))
        stamp = now - float(rng.uniform(0.0, 0.3))          # sometimes stale
        out = limiter.update(None if kind == 1 else raw, stamp, now)
        assert math.isfinite(out.angle_rad)
        assert abs(out.angle_rad) <= LIMITS.max_angle_rad
        if previous_now is not None:
            assert abs(out.angle_rad - previous) <= LIMITS.max_rate_rad_s * (now - previous_now) + 1e-12
        if out.held:
            assert out.angle_rad == previous
            held += 1
        previous, previous_now = out.angle_rad, now
    assert 0 < held < 5000


@pytest.mark.parametrize("raw", [math.nan, math.inf, -math.inf, None])
def test_non_finite_or_missing_input_holds_the_last_safe_value(raw: float | None) -> None:
    limiter = SteeringLimiter(LIMITS)
    for k in range(20):
        last = limiter.update(0.3, k * 0.05, k * 0.05)
    assert not last.held and last.angle_rad > 0.25
    out = limiter.update(raw, 1.0, 1.0)
    assert out.held and out.angle_rad == last.angle_rad
    assert ("not finite" in out.reason) if raw is not None else ("no steering input" in out.reason)


def test_stale_input_is_held_and_fresh_input_is_used_again() -> None:
    limiter = SteeringLimiter(LIMITS)
    limiter.update(0.1, 0.0, 0.0)
    stale = limiter.update(-0.4, 0.0, 0.5)
    assert stale.held and "stale" in stale.reason and stale.angle_rad == limiter.angle_rad
    fresh = limiter.update(-0.4, 0.55, 0.6)
    assert not fresh.held and fresh.angle_rad < 0.0


def test_angle_is_clamped_and_reached_at_the_rate_limit() -> None:
    limits = SteeringLimits(max_angle_rad=0.3, max_rate_rad_s=0.5, smoothing_time_constant_s=0.0,
                            stale_timeout_s=1.0)
    limiter = SteeringLimiter(limits)
    limiter.update(2.0, 0.0, 0.0)
    out = limiter.update(2.0, 0.1, 0.1)
    assert out.angle_rad == pytest.approx(0.05) and "rate limited" in out.reason
    for k in range(2, 20):
        out = limiter.update(2.0, k * 0.1, k * 0.1)
    assert out.angle_rad == pytest.approx(0.3) and "angle clamped" in out.reason


def test_smoothing_is_first_order_with_the_given_time_constant() -> None:
    limits = SteeringLimits(max_angle_rad=1.0, max_rate_rad_s=100.0, smoothing_time_constant_s=0.2,
                            stale_timeout_s=1.0)
    limiter = SteeringLimiter(limits)
    limiter.update(0.5, 0.0, 0.0)
    out = limiter.update(0.5, 0.2, 0.2)
    assert out.angle_rad == pytest.approx(0.5 * (1.0 - math.exp(-1.0)))


def test_out_of_order_input_is_held_once_then_a_restarted_clock_is_followed() -> None:
    limiter = SteeringLimiter(LIMITS)
    for k in range(5):
        limiter.update(0.2, 10.0 + k * 0.05, 10.0 + k * 0.05)
    looped = limiter.update(0.2, 0.0, 0.01)     # a replayed bag starts again
    assert looped.held and "older" in looped.reason
    assert not limiter.update(0.2, 0.05, 0.06).held


@pytest.mark.parametrize("field, value", [("max_angle_rad", -0.1), ("max_rate_rad_s", 0.0),
                                          ("smoothing_time_constant_s", math.nan),
                                          ("stale_timeout_s", math.inf),
                                          ("max_angle_rad", "0.5"), ("max_rate_rad_s", None)])
def test_bad_limits_are_rejected_naming_the_parameter(field: str, value: float) -> None:
    values = dict(max_angle_rad=0.5, max_rate_rad_s=0.5, smoothing_time_constant_s=0.1,
                  stale_timeout_s=0.2) | {field: value}
    with pytest.raises(ValueError, match=field):
        SteeringLimits(**values)
