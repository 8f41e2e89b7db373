"""Steering samples: windows of frame indices ending at the current frame, as the car's state has.

The exported model keeps the last ``T`` frame latents (oldest first, current last) and a mask that
is 0 for slots not yet filled after start-up. A training sample mirrors that: for every frame ``t``
of a sequence with a known steering angle, the window is frames ``t - (T-1)*stride, ..., t - stride,
t``; slots before the sequence start are masked. The target is the steering angle of frame ``t``.

Frames are addressed by GLOBAL index into the concatenation of all sequences (so one feature table
or image array serves every fold); a window never crosses a sequence boundary.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

MASKED = -1
"""Frame index of a window slot that holds no frame (before the sequence start)."""


class WindowSet(NamedTuple):
    """Steering samples. ``frames`` ``[S, T]`` int64 global frame indices (oldest first, current
    last; :data:`MASKED` = empty slot); ``target_rad`` ``[S]`` float32 steering of the current
    frame (rad, positive left); ``sequence`` ``[S]`` int64 index of the sample's sequence."""

    frames: np.ndarray
    target_rad: np.ndarray
    sequence: np.ndarray

    def __len__(self) -> int:
        return int(self.target_rad.shape[0])

    @property
    def mask(self) -> np.ndarray:
        """``[S, T]`` float32: 1 where the slot holds a real frame."""
        return (self.frames != MASKED).astype(np.float32)

    def select(self, sequences: Sequence[int]) -> "WindowSet":
        """The samples of the given sequences only."""
        keep = np.isin(self.sequence, np.asarray(sequences, dtype=np.int64))
        return WindowSet(self.frames[keep], self.target_rad[keep], self.sequence[keep])


def build_windows(steering_rad: Sequence[np.ndarray], window: int, stride: int = 1,
                  used_slots: int | None = None) -> WindowSet:
    """Windows over every frame of every sequence whose steering angle is finite.

    Args:
        steering_rad: per sequence, ``[F_i]`` steering of each frame (rad; NaN = unknown).
        window: slots ``T`` of the steering head.
        stride: recorded frames between consecutive window slots (the bag's rate over the rate
            the car runs the model at).
        used_slots: fill only the newest ``used_slots`` slots and mask the older ones (a shorter
            effective window, e.g. to make end-to-end fine-tuning affordable); None = all.
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window ({window}) and stride ({stride}) must be at least 1")
    used = window if used_slots is None else used_slots
    if not 1 <= used <= window:
        raise ValueError(f"used slots ({used}) must lie in 1..window ({window})")
    lags = (np.arange(window - 1, -1, -1) * stride).astype(np.int64)       # [T], current last
    frames, targets, owners, start = [], [], [], 0
    for index, values in enumerate(steering_rad):
        values = np.asarray(values, dtype=np.float32)
        current = np.flatnonzero(np.isfinite(values)).astype(np.int64)     # [S_i] local
        local = current[:, None] - lags[None, :]                           # [S_i, T]
        empty = (local < 0) | (np.arange(window) < window - used)[None, :]
        frames.append(np.where(empty, MASKED, local + start))
        targets.append(values[current])
        owners.append(np.full(current.size, index, dtype=np.int64))
        start += values.size
    if not frames:
        return WindowSet(np.zeros((0, window), np.int64), np.zeros(0, np.float32),
                         np.zeros(0, np.int64))
    return WindowSet(np.concatenate(frames), np.concatenate(targets), np.concatenate(owners))
