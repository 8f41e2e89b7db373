"""The node's ``/diagnostics`` status, in every lifecycle state.

While the node processes frames (active): rate, latency, drops, invalid frames, non-finite model
outputs, frames per inference call (how many cameras shared one batched call), provider, model
(:func:`diagnostics_message`). Otherwise why it does not
(:class:`IdleStatus`, :func:`idle_message`): ERROR while the model could not be loaded (the reason
of the last failed configure), WARN while it is unconfigured or inactive on request.
"""

from __future__ import annotations

from typing import NamedTuple

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from unified_perception.ros import builders
from unified_perception.ros.params import NodeSettings
from unified_perception.runtime.engine import InferenceEngine
from unified_perception.runtime.stats import StatsSnapshot

RECENT_INVALID_S = 10.0
"""The status stays WARN for this long after the last invalid frame, then returns to OK."""


class IdleStatus(NamedTuple):
    """What ``/diagnostics`` says while the node processes no frames: level, message and the
    lifecycle state it is in."""

    level: bytes
    message: str
    state: str


NOT_CONFIGURED = IdleStatus(DiagnosticStatus.WARN, "model not loaded: the node is not configured "
                            "yet (configure it through its lifecycle service)", "unconfigured")
CLEANED_UP = IdleStatus(DiagnosticStatus.WARN, "model not loaded: the node was cleaned up "
                        "(configure it to load the model)", "unconfigured")
INACTIVE = IdleStatus(DiagnosticStatus.WARN, "inactive: the model is loaded, camera frames are "
                      "not processed (activate the node)", "inactive")


def model_not_loaded(reason: str) -> IdleStatus:
    """The ERROR status after a failed configure; it holds until a configure succeeds."""
    return IdleStatus(DiagnosticStatus.ERROR, f"model not loaded: {reason}", "unconfigured")


def idle_message(node_name: str, settings: NodeSettings, idle: IdleStatus,
                 stamp: Time) -> DiagnosticArray:
    """The status of a node that processes no frames, under the same name as when it does."""
    values = {"lifecycle_state": idle.state, "model_path": settings.model_path,
              "cameras": ",".join(settings.cameras)}
    return builders.diagnostics(_status_name(node_name), settings.model_path, idle.level,
                                idle.message, values, stamp)


def _status_name(node_name: str) -> str:
    return f"{node_name.lstrip('/')}: inference"


def diagnostics_message(node_name: str, settings: NodeSettings, engine: InferenceEngine,
                        stats: StatsSnapshot, received: int, last_invalid_reason: str,
                        stamp: Time, last_non_finite_reason: str = "") -> DiagnosticArray:
    """One status named after the node: OK while frames flow; ERROR while the model's outputs are
    not finite (from such a frame until the next good one); WARN when no frame was processed for
    ``steering.stale_timeout_s`` (the steering watchdog holds), when frames were rejected or
    outputs were not finite in the last :data:`RECENT_INVALID_S`, or none was processed yet.
    Rate (frames of all cameras per second), latency (receipt to published) with the p50 of each
    of its stages (``<stage>_p50_ms``, :data:`runtime.stats.FRAME_STAGES`) and frames per
    inference call (the engine's batch sizes) are over the recent window; the largest batch and the
    call count are since configure."""
    batches = engine.batches.snapshot()
    values = {
        "lifecycle_state": "active",
        "rate_hz": f"{stats.rate_hz:.2f}",
        "rate_hz_per_camera": f"{stats.rate_hz / max(len(settings.cameras), 1):.2f}",
        "latency_p50_ms": f"{stats.latency_p50_ms:.2f}",
        "latency_p95_ms": f"{stats.latency_p95_ms:.2f}",
        **{f"{stage}_p50_ms": f"{ms:.2f}" for stage, ms in stats.stages_p50_ms},
        "frames_received": received,
        "frames_processed": stats.frames,
        "frames_dropped": stats.dropped,
        "frames_invalid": stats.invalid,
        "last_invalid_reason": last_invalid_reason,
        "frames_non_finite": stats.non_finite,
        "last_non_finite_reason": last_non_finite_reason,
        "inference_calls": batches.calls,
        "frames_per_call": f"{batches.frames_per_call:.2f}",
        "max_frames_per_call": batches.max_frames_per_call,
        "active_provider": engine.active_provider,
        "provider_reason": engine.provider_reason,
        "model_path": settings.model_path,
        "cameras": ",".join(settings.cameras),
    }
    recent_non_finite = (stats.since_non_finite_s is not None
                         and stats.since_non_finite_s < RECENT_INVALID_S)
    if stats.failing:
        level, message = DiagnosticStatus.ERROR, (
            f"model outputs are not finite, nothing is published ({stats.non_finite} frame(s) in "
            f"total): {last_non_finite_reason}")
    elif stats.since_frame_s is not None and stats.since_frame_s > settings.steering_stale_timeout_s:
        level, message = DiagnosticStatus.WARN, (
            f"no camera frame processed for {stats.since_frame_s:.1f} s: steering is held, then "
            f"returned to straight")
    elif recent_non_finite:
        level, message = DiagnosticStatus.WARN, (
            f"model outputs were not finite {stats.since_non_finite_s:.1f} s ago "
            f"({stats.non_finite} frame(s) in total): {last_non_finite_reason}")
    elif stats.since_invalid_s is not None and stats.since_invalid_s < RECENT_INVALID_S:
        level, message = DiagnosticStatus.WARN, (
            f"invalid frame(s) rejected {stats.since_invalid_s:.1f} s ago "
            f"({stats.invalid} in total): {last_invalid_reason}")
    elif stats.frames == 0:
        level, message = DiagnosticStatus.WARN, "no camera frames processed yet"
    else:
        level, message = DiagnosticStatus.OK, f"running on {engine.active_provider}"
    return builders.diagnostics(_status_name(node_name), settings.model_path, level, message,
                                values, stamp)
