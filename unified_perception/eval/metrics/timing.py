"""Latency percentiles and frame counts in constant memory.

Latencies (ms) are counted in a fixed histogram of :data:`LATENCY_RESOLUTION_MS` (0.1 ms) bins from
0 to :data:`LATENCY_RANGE_MS` (10 s): each latency is rounded to the nearest multiple of 0.1 ms, so a
reported percentile is off by at most 0.05 ms. Percentiles use the nearest-rank definition (the
smallest recorded value with at least p % of the values at or below it; numpy's
``method="inverted_cdf"``, Hyndman & Fan 1996 definition 1). Latencies of 10 s or more share one
overflow bin; a percentile that falls there is reported as the largest latency seen.
"""

from __future__ import annotations

import math

import numpy as np

LATENCY_RESOLUTION_MS = 0.1
LATENCY_RANGE_MS = 10_000.0
_BINS_PER_MS = 10                                    # 1 / LATENCY_RESOLUTION_MS, exact
_BINS = int(LATENCY_RANGE_MS) * _BINS_PER_MS         # plus one overflow bin
PERCENTILES: tuple[int, ...] = (50, 95, 99)


class LatencyAccumulator:
    """Histogram of latencies (100 001 counters) plus frames in / out / dropped."""

    def __init__(self) -> None:
        self._counts = np.zeros(_BINS + 1, dtype=np.int64)
        self.count = 0
        self.sum_ms = 0.0
        self.max_ms = -math.inf
        self.frames_in = self.frames_out = self.frames_dropped = 0

    def update(self, latency_ms: float | np.ndarray) -> None:
        """Record one latency or an array of latencies (ms, finite, >= 0)."""
        latency = np.asarray(latency_ms, dtype=np.float64).ravel()
        if not np.all(np.isfinite(latency)) or np.any(latency < 0.0):
            raise ValueError(f"latencies must be finite and non-negative (ms), got {latency_ms!r}; "
                             "check the clocks the latency was measured with")
        if not latency.size:
            return
        index = np.minimum(np.rint(latency * _BINS_PER_MS).astype(np.int64), _BINS)
        np.add.at(self._counts, index, 1)
        self.count += latency.size
        self.sum_ms += float(latency.sum())
        self.max_ms = max(self.max_ms, float(latency.max()))

    def count_in(self, n: int = 1) -> None:
        """``n`` frames arrived."""
        self.frames_in += n

    def count_out(self, n: int = 1) -> None:
        """``n`` frames produced an output."""
        self.frames_out += n

    def count_dropped(self, n: int = 1) -> None:
        """``n`` frames were dropped (replaced by a newer one, or rejected) without an output."""
        self.frames_dropped += n

    def percentile_ms(self, percent: float) -> float:
        """Nearest-rank ``percent`` percentile (ms, 0.1 ms resolution); NaN before any latency."""
        if not self.count:
            return float("nan")
        if not 0.0 < percent <= 100.0:
            raise ValueError(f"percentile must be in (0, 100], got {percent}")
        rank = max(math.ceil(percent / 100.0 * self.count), 1)
        index = int(np.searchsorted(np.cumsum(self._counts), rank, side="left"))
        return self.max_ms if index == _BINS else index / _BINS_PER_MS

    def result(self) -> dict[str, float]:
        """``{"p50", "p95", "p99", "mean", "max"}`` in ms (NaN before any latency)."""
        figures = {f"p{p}": self.percentile_ms(p) for p in PERCENTILES}
        figures["mean"] = self.sum_ms / self.count if self.count else float("nan")
        figures["max"] = self.max_ms if self.count else float("nan")
        return figures

    def frames(self) -> dict[str, int]:
        """``{"in", "out", "dropped"}`` frame counts."""
        return {"in": self.frames_in, "out": self.frames_out, "dropped": self.frames_dropped}

    def merge(self, other: LatencyAccumulator) -> None:
        """Add ``other``'s latencies and frame counts."""
        self._counts += other._counts
        self.count += other.count
        self.sum_ms += other.sum_ms
        self.max_ms = max(self.max_ms, other.max_ms)
        self.frames_in += other.frames_in
        self.frames_out += other.frames_out
        self.frames_dropped += other.frames_dropped
