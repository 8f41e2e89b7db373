"""How closely a quantized (or otherwise rewritten) model follows its float32 original.

Both models run in the runtime engine (:class:`~unified_perception.runtime.engine.InferenceEngine`,
CPU) on the same frames in order, each carrying its own temporal state, and their
:class:`~unified_perception.runtime.engine.FrameResult` s are compared output by output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from unified_perception.runtime.engine import CameraFrame, EngineConfig, FrameResult, InferenceEngine


@dataclass(frozen=True)
class Agreement:
    """Differences of a model's outputs from the reference's over ``frames`` frames.

    ``depth_rel_error``: mean over pixels and frames of ``|d - d_ref| / d_ref``; ``semantic_agreement``
    and ``panoptic_agreement``: fraction of pixels with the same id; ``motion_prob_abs_error``:
    mean ``|p - p_ref|``; ``pose_translation_m`` / ``pose_rotation_deg``: largest difference of
    ``T_cam_prev_cam_cur`` over the frame pairs (m, degrees of the relative rotation);
    ``steering_abs_rad``: largest ``|s - s_ref|``; ``scene_flow_abs_m``: mean ``|f - f_ref|``.
    A value is None where the model serves no such output.
    """

    frames: int
    depth_rel_error: float | None
    semantic_agreement: float | None
    panoptic_agreement: float | None
    motion_prob_abs_error: float | None
    scene_flow_abs_m: float | None
    pose_translation_m: float | None
    pose_rotation_deg: float | None
    steering_abs_rad: float | None


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _max(values: list[float]) -> float | None:
    return float(np.max(values)) if values else None


def rotation_angle_deg(R: np.ndarray) -> float:
    """Angle of the rotation ``R [3, 3]`` in degrees, as ``atan2(sin, cos)`` in float64: the
    arccos of the trace alone reads float32 rounding near the identity (1e-7) as 0.02 degrees."""
    R = np.asarray(R, dtype=np.float64)
    skew = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    return float(np.degrees(np.arctan2(np.linalg.norm(skew) / 2.0, (np.trace(R) - 1.0) / 2.0)))


def compare_results(pairs: Iterable[tuple[FrameResult, FrameResult]]) -> Agreement:
    """:class:`Agreement` of ``(result, reference)`` pairs of the same frames."""
    depth, sem, pan, motion, flow, trans, rot, steer = ([] for _ in range(8))
    frames = 0
    for res, ref in pairs:
        frames += 1
        if ref.depth_m is not None:
            depth.append(float(np.mean(np.abs(res.depth_m - ref.depth_m) / ref.depth_m)))
        if ref.semantic is not None:
            sem.append(float(np.mean(res.semantic == ref.semantic)))
        if ref.panoptic is not None:
            pan.append(float(np.mean(res.panoptic == ref.panoptic)))
        if ref.motion_prob is not None and res.motion_prob is not None:
            motion.append(float(np.mean(np.abs(res.motion_prob - ref.motion_prob))))
        if ref.scene_flow_m is not None and res.scene_flow_m is not None:
            flow.append(float(np.mean(np.abs(res.scene_flow_m - ref.scene_flow_m))))
        if ref.T_cam_prev_cam_cur is not None and res.T_cam_prev_cam_cur is not None:
            T, T_ref = res.T_cam_prev_cam_cur, ref.T_cam_prev_cam_cur
            trans.append(float(np.linalg.norm(T[:3, 3] - T_ref[:3, 3])))
            rot.append(rotation_angle_deg(T_ref[:3, :3].T @ T[:3, :3]))
        if ref.steering_rad is not None:
            steer.append(abs(res.steering_rad - ref.steering_rad))
    return Agreement(frames, _mean(depth), _mean(sem), _mean(pan), _mean(motion), _mean(flow),
                     _max(trans), _max(rot), _max(steer))


def compare_models(model: Path, reference: Path, images_rgb: Iterable[np.ndarray],
                   period_s: float = 0.1, threads: int = 0) -> Agreement:
    """Run ``images_rgb`` (``[H, W, 3] uint8``, consecutive frames ``period_s`` apart) through
    both models on the CPU and compare ``model``'s results with ``reference``'s."""
    engines = [InferenceEngine(EngineConfig(str(path), providers=("cpu",), warmup_runs=0,
                                            intra_op_threads=threads), log=lambda _: None)
               for path in (model, reference)]
    try:
        def pairs():
            for i, image in enumerate(images_rgb):
                frame = [CameraFrame("camera", image, i * period_s)]
                yield engines[0].infer(frame)[0], engines[1].infer(frame)[0]
        return compare_results(pairs())
    finally:
        for engine in engines:
            engine.close()
