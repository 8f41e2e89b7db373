"""Run statistics for diagnostics: output rate, latency percentiles and where the latency goes
(:data:`FRAME_STAGES`), dropped, invalid frames and frames whose model outputs were not finite
(:class:`RunStats`); frames per inference call, i.e. how many cameras share one batched call
(:class:`BatchStats`).

Thread-safe: frames are recorded from the inference thread while diagnostics read from the executor.
Times in seconds in, Hz and milliseconds out.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Mapping, NamedTuple

import numpy as np

FRAME_STAGES = ("take", "queue", "decode", "inference", "messages", "publish")
"""The steps of a frame's latency in the node, in order: from the middleware's receipt of the image
to its subscription callback (the executor waking up and taking the message; 0 where the
middleware reports no receipt time), waiting for the inference thread, decoding the image message,
the engine call (resize, the batched session run, outputs), building its output messages,
publishing them. A batch's decode and engine call are shared by its cameras; a later camera of a
batch also waits for the earlier ones' messages."""


class StatsSnapshot(NamedTuple):
    """What ``/diagnostics`` reports. Rates and latencies are over the last ``window`` frames."""

    rate_hz: float
    latency_p50_ms: float
    latency_p95_ms: float
    frames: int          # processed since start
    dropped: int         # replaced by a newer frame before they could be processed
    invalid: int         # rejected (bad encoding, wrong step, truncated data, ...)
    window: int          # frames the rate and latencies are computed over
    since_invalid_s: float | None = None   # seconds since the last invalid frame, None if none
    non_finite: int = 0                     # frames whose model outputs held NaN / Inf
    since_non_finite_s: float | None = None  # seconds since the last such frame, None if none
    failing: bool = False                   # the last frame with outputs had non-finite ones
    since_frame_s: float | None = None      # seconds since the last processed frame, None if none
    stages_p50_ms: tuple[tuple[str, float], ...] = ()   # (stage, p50 ms) of FRAME_STAGES recorded


class RunStats:
    """Counts frames and keeps the completion times and latencies of the last ``window`` frames."""

    def __init__(self, window: int = 100) -> None:
        if window < 2:
            raise ValueError(f"the statistics window needs at least 2 frames, got {window}")
        self._lock = threading.Lock()
        self._done_s: deque[float] = deque(maxlen=window)
        self._latency_s: deque[float] = deque(maxlen=window)
        self._stages_s: dict[str, deque[float]] = {stage: deque(maxlen=window) for stage in FRAME_STAGES}
        self._frames = self._dropped = self._invalid = 0
        self._last_invalid_s: float | None = None
        self._non_finite = 0
        self._last_non_finite_s: float | None = None

    def record_frame(self, done_s: float, latency_s: float,
                     stages_s: Mapping[str, float] | None = None) -> None:
        """One processed frame: when it finished (``done_s``, any monotonic clock), how long from
        receipt (or from its stamp) to output (``latency_s``) and, optionally, how long each of
        its :data:`FRAME_STAGES` took (``stages_s``, seconds; others are refused)."""
        unknown = set(stages_s or ()) - set(FRAME_STAGES)
        if unknown:
            raise ValueError(f"unknown frame stage(s) {sorted(unknown)}; known: {FRAME_STAGES}")
        with self._lock:
            self._done_s.append(float(done_s))
            self._latency_s.append(float(latency_s))
            for stage, seconds in (stages_s or {}).items():
                self._stages_s[stage].append(float(seconds))
            self._frames += 1

    def count_dropped(self, n: int = 1) -> None:
        with self._lock:
            self._dropped += n

    def count_invalid(self, n: int = 1, now_s: float | None = None) -> None:
        """``n`` rejected frames at ``now_s`` (``time.monotonic()`` when not given)."""
        with self._lock:
            self._invalid += n
            self._last_invalid_s = time.monotonic() if now_s is None else now_s

    def count_non_finite(self, now_s: float | None = None) -> None:
        """One frame whose model outputs were not finite, at ``now_s`` (monotonic when not given).

        It is not a processed frame: :attr:`StatsSnapshot.failing` holds until the next
        :meth:`record_frame` with a later ``done_s``.
        """
        with self._lock:
            self._non_finite += 1
            self._last_non_finite_s = time.monotonic() if now_s is None else now_s

    def snapshot(self, now_s: float | None = None) -> StatsSnapshot:
        """Current figures at ``now_s`` (``time.monotonic()`` when not given); rate and latencies
        are 0.0 until two (one) frames were recorded."""
        now_s = time.monotonic() if now_s is None else now_s
        with self._lock:
            done = np.asarray(self._done_s)
            latency = np.asarray(self._latency_s)
            stages = {stage: np.asarray(v) for stage, v in self._stages_s.items() if v}
            frames, dropped, invalid = self._frames, self._dropped, self._invalid
            since_invalid = None if self._last_invalid_s is None else now_s - self._last_invalid_s
            last_bad = self._last_non_finite_s
            failing = last_bad is not None and (not self._done_s or self._done_s[-1] < last_bad)
            non_finite = self._non_finite
        span = float(done[-1] - done[0]) if len(done) >= 2 else 0.0
        rate = (len(done) - 1) / span if span > 0.0 else 0.0
        p50, p95 = (np.percentile(latency, [50, 95]) * 1e3) if len(latency) else (0.0, 0.0)
        return StatsSnapshot(rate, float(p50), float(p95), frames, dropped, invalid, len(done),
                             since_invalid, non_finite,
                             None if last_bad is None else now_s - last_bad, failing,
                             float(now_s - done[-1]) if len(done) else None,
                             tuple((stage, float(np.median(v) * 1e3)) for stage, v in stages.items()))

    def reset(self) -> None:
        with self._lock:
            self._done_s.clear()
            self._latency_s.clear()
            for values in self._stages_s.values():
                values.clear()
            self._frames = self._dropped = self._invalid = 0
            self._last_invalid_s = None
            self._non_finite = 0
            self._last_non_finite_s = None


class BatchSnapshot(NamedTuple):
    """Frames per inference call: how many camera frames each batched session run carried."""

    calls: int                  # inference calls since start
    frames_per_call: float      # mean over the last ``window`` calls, 0.0 before the first call
    max_frames_per_call: int    # largest batch since start, 0 before the first call
    window: int                 # calls the mean is computed over


class BatchStats:
    """Counts inference calls and the number of frames each carried (thread-safe)."""

    def __init__(self, window: int = 100) -> None:
        if window < 1:
            raise ValueError(f"the batch statistics window needs at least 1 call, got {window}")
        self._lock = threading.Lock()
        self._sizes: deque[int] = deque(maxlen=window)
        self._calls = self._max = 0

    def record(self, frames: int) -> None:
        """One inference call that ran ``frames`` camera frames (one batch row each)."""
        with self._lock:
            self._sizes.append(int(frames))
            self._calls += 1
            self._max = max(self._max, int(frames))

    def snapshot(self) -> BatchSnapshot:
        with self._lock:
            sizes = list(self._sizes)
            calls, largest = self._calls, self._max
        mean = float(np.mean(sizes)) if sizes else 0.0
        return BatchSnapshot(calls, mean, largest, len(sizes))
