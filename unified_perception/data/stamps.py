"""Matching messages to camera frames by time stamp (integer nanoseconds)."""

from __future__ import annotations

import numpy as np

NO_MATCH = -1


def match_nearest(stamps_ns: np.ndarray, query_ns: np.ndarray, tolerance_ns: int) -> np.ndarray:
    """Index into sorted ``stamps_ns [N] int64`` of the nearest stamp to each ``query_ns [M]``.

    Returns ``[M] int64``, :data:`NO_MATCH` where the nearest stamp is more than ``tolerance_ns``
    away (or ``stamps_ns`` is empty). Ties go to the earlier stamp.
    """
    stamps_ns = np.asarray(stamps_ns, dtype=np.int64)
    query_ns = np.asarray(query_ns, dtype=np.int64)
    if stamps_ns.size == 0:
        return np.full(query_ns.shape, NO_MATCH, dtype=np.int64)
    right = np.clip(np.searchsorted(stamps_ns, query_ns), 0, stamps_ns.size - 1)
    left = np.clip(right - 1, 0, stamps_ns.size - 1)
    d_left = np.abs(query_ns - stamps_ns[left])
    d_right = np.abs(stamps_ns[right] - query_ns)
    best = np.where(d_left <= d_right, left, right)
    distance = np.minimum(d_left, d_right)
    return np.where(distance <= tolerance_ns, best, NO_MATCH)


def match_exact(stamps_ns: np.ndarray, query_ns: np.ndarray) -> np.ndarray:
    """Index into sorted ``stamps_ns`` equal to each ``query_ns``, :data:`NO_MATCH` where none is."""
    return match_nearest(stamps_ns, query_ns, 0)
