"""Temporal state per camera: when to reset it, and host copies of each camera's batch row.

The model carries the previous frame in explicit ``state_in_*`` / ``state_out_*`` tensors (see
``contract.py``). Every camera owns one batch row of each state tensor; an all-zero row means "no
previous frame". This module keeps those rows in host memory between calls and decides when a
camera's state must start again. Keeping state on the GPU is :mod:`runtime.device_state`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from unified_perception.contract import TensorInfo, normalize_dtype, state_pairs


@dataclass(frozen=True)
class StateSpec:
    """One state tensor: its input and output names, numpy dtype and per-row shape (without ``N``)."""

    in_name: str
    out_name: str
    dtype: np.dtype
    row_shape: tuple[int, ...]

    def zeros(self, n: int) -> np.ndarray:
        """``[n, *row_shape]`` zeros: the state of ``n`` cameras without a previous frame."""
        return np.zeros((n, *self.row_shape), dtype=self.dtype)


def state_specs(inputs: Sequence[TensorInfo]) -> tuple[StateSpec, ...]:
    """The state tensors of a model whose inputs passed ``contract.check_model_io``."""
    pairs = state_pairs([t.name for t in inputs])
    by_name = {t.name: t for t in inputs}
    return tuple(StateSpec(name, out, np.dtype(normalize_dtype(by_name[name].dtype)),
                           tuple(int(d) for d in by_name[name].shape[1:]))
                 for name, out in pairs.items())


def reset_reason(previous_stamp_s: float | None, stamp_s: float, max_gap_s: float) -> str:
    """Why a camera's state must restart at ``stamp_s`` ("" when it continues).

    Restarts on the first frame, when time does not move forward (a replayed bag looping, a clock
    reset, a duplicated frame) and when the gap since the previous frame exceeds ``max_gap_s``.
    """
    if previous_stamp_s is None:
        return "first frame"
    if not math.isfinite(stamp_s):
        return f"stamp {stamp_s} is not finite"
    if stamp_s <= previous_stamp_s:
        return f"time jumped backwards ({previous_stamp_s:.3f} s -> {stamp_s:.3f} s)"
    if stamp_s - previous_stamp_s > max_gap_s:
        return f"gap of {stamp_s - previous_stamp_s:.3f} s exceeds max_gap_s = {max_gap_s:.3f} s"
    return ""


class HostStates:
    """Each camera's state rows in host memory: ``{camera: {in_name: [1, *row_shape]}}``."""

    def __init__(self, specs: Sequence[StateSpec]) -> None:
        self.specs = tuple(specs)
        self._rows: dict[str, dict[str, np.ndarray]] = {}

    def __contains__(self, camera: str) -> bool:
        return camera in self._rows

    def gather(self, cameras: Sequence[str], fresh: Sequence[bool]) -> dict[str, np.ndarray]:
        """The batch state inputs ``{in_name: [N, ...]}``: zeros for fresh (or unknown) cameras."""
        if len(cameras) == 1 and not fresh[0] and cameras[0] in self._rows:
            return dict(self._rows[cameras[0]])          # one camera: its rows are the batch
        batch = {spec.in_name: spec.zeros(len(cameras)) for spec in self.specs}
        for i, (camera, is_fresh) in enumerate(zip(cameras, fresh)):
            rows = None if is_fresh else self._rows.get(camera)
            if rows is not None:
                for spec in self.specs:
                    batch[spec.in_name][i] = rows[spec.in_name][0]
        return batch

    def scatter(self, cameras: Sequence[str], state_out: Mapping[str, np.ndarray]) -> None:
        """Store row ``i`` of each ``state_out`` (keyed by input name) as camera ``i``'s state."""
        if len(cameras) == 1:                            # keep the session's arrays, no copy
            self._rows[cameras[0]] = {spec.in_name: state_out[spec.in_name] for spec in self.specs}
            return
        for i, camera in enumerate(cameras):
            self._rows[camera] = {spec.in_name: np.array(state_out[spec.in_name][i:i + 1])
                                  for spec in self.specs}

    def drop(self, camera: str | None = None) -> None:
        """Forget one camera's state (or every camera's)."""
        if camera is None:
            self._rows.clear()
        else:
            self._rows.pop(camera, None)
