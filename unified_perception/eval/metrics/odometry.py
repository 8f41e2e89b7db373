"""Trajectory metrics: absolute trajectory error (ATE) and relative pose error (RPE).

Definitions as in Sturm et al., "A Benchmark for the Evaluation of RGB-D SLAM Systems", IROS 2012,
and as computed by evo (M. Grupp, https://github.com/MichaelGrupp/evo): ``evo_ape ... -a`` / ``-as``
with the translation part for ATE, ``evo_rpe`` for RPE. Poses are ``[N, 4, 4]`` homogeneous
``T_world_body`` matrices (``pred`` and ``gt`` paired by index, i.e. already associated in time);
translations in metres, angles reported in degrees.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterator, Literal

import numpy as np

from unified_perception.transforms import invert_transform

Alignment = Literal["se3", "sim3", "none"]


def _check_poses(name: str, poses: np.ndarray) -> np.ndarray:
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise ValueError(f"{name} must be [N, 4, 4] homogeneous transforms, got shape {poses.shape}")
    return poses


def _check_pair(poses_pred: np.ndarray, poses_gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = _check_poses("poses_pred", poses_pred), _check_poses("poses_gt", poses_gt)
    if pred.shape != gt.shape:
        raise ValueError(f"predicted and true trajectories need the same number of poses, got "
                         f"{pred.shape[0]} and {gt.shape[0]}; associate them by time first")
    return pred, gt


def umeyama_alignment(src: np.ndarray, dst: np.ndarray,
                      with_scale: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """Least-squares ``(R [3, 3], t [3], s)`` minimising ``sum_i |dst_i - (s R src_i + t)|^2``.

    S. Umeyama, "Least-squares estimation of transformation parameters between two point
    patterns", IEEE TPAMI 13(4), 1991, Eq. 34-43 (the reflection-safe SVD solution). ``src``,
    ``dst``: ``[3, N]`` corresponding points (m). ``s = 1`` unless ``with_scale``. Degenerate
    configurations still give a minimiser: for points on a line the rotation about the line is
    arbitrary; for identical source points (a trajectory that never moves) ``s = 0`` and ``t`` is
    the centroid of ``dst``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[0] != 3 or src.shape[1] < 2:
        raise ValueError(f"Umeyama alignment needs two [3, N] point sets with N >= 2, got "
                         f"{src.shape} and {dst.shape}")
    mean_src, mean_dst = src.mean(axis=1), dst.mean(axis=1)
    centred_src, centred_dst = src - mean_src[:, None], dst - mean_dst[:, None]
    n = src.shape[1]
    variance_src = float(np.sum(centred_src * centred_src)) / n                  # Eq. 36
    covariance = centred_dst @ centred_src.T / n                                 # Eq. 38
    U, d, Vt = np.linalg.svd(covariance)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0.0:                               # Eq. 39 / 43
        S[2, 2] = -1.0
    R = U @ S @ Vt
    if not with_scale:
        scale = 1.0
    elif variance_src > 0.0:
        scale = float(np.sum(d * np.diag(S))) / variance_src                     # Eq. 42
    else:   # all source points identical: shrinking them onto dst's centroid is a minimiser
        scale = 0.0
    t = mean_dst - scale * R @ mean_src                                          # Eq. 41
    return R, t, scale


def aligned_positions(poses_pred: np.ndarray, poses_gt: np.ndarray,
                      align: Alignment = "se3") -> np.ndarray:
    """``[N, 3]`` predicted positions (m) after aligning them onto the true ones (Umeyama 1991):
    rigidly (``"se3"``, evo ``-a``), with scale (``"sim3"``, evo ``-as``) or not at all (``"none"``)."""
    pred, gt = _check_pair(poses_pred, poses_gt)
    positions = pred[:, :3, 3]
    if align == "none":
        return positions
    if align not in ("se3", "sim3"):
        raise ValueError(f"alignment must be 'se3', 'sim3' or 'none', got {align!r}")
    R, t, s = umeyama_alignment(positions.T, gt[:, :3, 3].T, with_scale=align == "sim3")
    return s * positions @ R.T + t


def absolute_trajectory_error(poses_pred: np.ndarray, poses_gt: np.ndarray,
                              align: Alignment = "se3") -> float:
    """ATE (m): RMSE of the position differences after alignment (see :func:`aligned_positions`).

    ``sqrt(mean_i |p_gt_i - align(p_pred_i)|^2)`` over ``[N, 4, 4]`` paired poses: Sturm et al.
    2012 Eq. 3 / evo's APE of the translation part (``evo_ape tum gt pred -a [-s]``, rmse).
    """
    _, gt = _check_pair(poses_pred, poses_gt)
    diff = gt[:, :3, 3] - aligned_positions(poses_pred, poses_gt, align)
    return float(np.sqrt(np.mean(np.sum(diff * diff, axis=1))))


def rotation_angle_rad(R: np.ndarray) -> np.ndarray:
    """Angle (rad, in [0, pi]) of rotation matrices ``[..., 3, 3]``: the norm of their SO(3) log.

    ``atan2(|axis|, cos)`` with ``2 sin(angle) axis`` the skew part and ``2 cos(angle) + 1`` the
    trace: accurate at small angles, unlike ``arccos((trace - 1) / 2)``.
    """
    skew = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0],
                     R[..., 1, 0] - R[..., 0, 1]], axis=-1)
    sin_angle = 0.5 * np.linalg.norm(skew, axis=-1)
    cos_angle = 0.5 * (np.trace(R, axis1=-2, axis2=-1) - 1.0)
    return np.arctan2(sin_angle, cos_angle)


@dataclass(frozen=True)
class RpeResult:
    """Relative pose error: RMSE and mean of the translation (m) and rotation (deg) errors.

    Unpacks as ``trans_rmse_m, rot_rmse_deg = relative_pose_error(...)`` (the RMSE, as evo reports
    and as Sturm et al. 2012 Eq. 2 defines); the means are there for reports that prefer them.
    """

    trans_rmse_m: float
    rot_rmse_deg: float
    trans_mean_m: float
    rot_mean_deg: float
    pairs: int

    def __iter__(self) -> Iterator[float]:
        return iter((self.trans_rmse_m, self.rot_rmse_deg))

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def relative_pose_error(poses_pred: np.ndarray, poses_gt: np.ndarray, delta: int = 1) -> RpeResult:
    """RPE over all pairs ``(i, i + delta)`` of ``[N, 4, 4]`` paired poses (frames, no alignment).

    ``E_i = (Q_i^-1 Q_{i+d})^-1 (P_i^-1 P_{i+d})`` with ``Q`` the truth and ``P`` the prediction
    (Sturm et al. 2012 Eq. 1, evo's RPE). Translation error ``|trans(E_i)|`` (m), rotation error
    the angle of ``rot(E_i)`` (deg). Equals ``evo_rpe tum gt pred --delta d --delta_unit f
    --all_pairs`` (for ``delta = 1`` evo's default pairs are the same). NaN with fewer than
    ``delta + 1`` poses.
    """
    pred, gt = _check_pair(poses_pred, poses_gt)
    if delta < 1:
        raise ValueError(f"RPE delta must be at least 1 frame, got {delta}")
    if pred.shape[0] <= delta:
        nan = float("nan")
        return RpeResult(nan, nan, nan, nan, 0)
    step_gt = invert_transform(gt[:-delta]) @ gt[delta:]
    step_pred = invert_transform(pred[:-delta]) @ pred[delta:]
    error = invert_transform(step_gt) @ step_pred
    trans = np.linalg.norm(error[:, :3, 3], axis=1)
    rot_deg = np.degrees(rotation_angle_rad(error[:, :3, :3]))
    return RpeResult(trans_rmse_m=float(np.sqrt(np.mean(trans * trans))),
                     rot_rmse_deg=float(np.sqrt(np.mean(rot_deg * rot_deg))),
                     trans_mean_m=float(np.mean(trans)), rot_mean_deg=float(np.mean(rot_deg)),
                     pairs=int(trans.size))


def relative_poses_to_trajectory(T_prev_cur: np.ndarray, T_start: np.ndarray | None = None) -> np.ndarray:
    """Chain ego-motion steps into poses: ``[N, 4, 4]`` steps -> ``[N + 1, 4, 4]`` ``T_world_k``.

    ``T_prev_cur[k]`` is the pose of frame ``k + 1`` in frame ``k`` (the contract's ``ego_motion``,
    ``T_cam_prev_cam_cur``); ``T_world_0 = T_start`` (identity by default) and
    ``T_world_{k+1} = T_world_k @ T_prev_cur[k]``.
    """
    steps = _check_poses("T_prev_cur", T_prev_cur)
    poses = np.empty((steps.shape[0] + 1, 4, 4))
    poses[0] = np.eye(4) if T_start is None else np.asarray(T_start, dtype=np.float64)
    for k, step in enumerate(steps):
        poses[k + 1] = poses[k] @ step
    return poses


class TrajectoryAccumulator:
    """Collects time-stamped predicted and true poses (16 + 16 + 1 floats a frame) and scores them.

    The poses of both trajectories are ``T_odom_body`` in their own odom frames; ATE aligns them.
    :meth:`result` sorts by stamp, so :meth:`merge` can join pieces of one sequence in any order.
    """

    def __init__(self, rpe_delta: int = 1) -> None:
        """``rpe_delta``: RPE pair distance in frames."""
        if rpe_delta < 1:
            raise ValueError(f"RPE delta must be at least 1 frame, got {rpe_delta}")
        self.rpe_delta = rpe_delta
        self._stamps: list[float] = []
        self._pred: list[np.ndarray] = []
        self._gt: list[np.ndarray] = []

    def update(self, stamp_s: float, T_odom_pred: np.ndarray, T_odom_gt: np.ndarray) -> None:
        """Add one frame: its stamp (s) and the predicted and true ``[4, 4]`` poses."""
        pred = np.asarray(T_odom_pred, dtype=np.float64)
        gt = np.asarray(T_odom_gt, dtype=np.float64)
        if pred.shape != (4, 4) or gt.shape != (4, 4):
            raise ValueError(f"poses must be [4, 4], got {pred.shape} and {gt.shape}")
        self._stamps.append(float(stamp_s))
        self._pred.append(pred.copy())
        self._gt.append(gt.copy())

    def __len__(self) -> int:
        return len(self._stamps)

    def trajectories(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(stamps_s [N], poses_pred [N, 4, 4], poses_gt [N, 4, 4])`` sorted by stamp."""
        stamps = np.asarray(self._stamps)
        order = np.argsort(stamps, kind="stable")
        if np.any(np.diff(stamps[order]) == 0.0):
            raise ValueError("two poses share one stamp; each frame must be added once")
        if not len(order):
            return stamps, np.zeros((0, 4, 4)), np.zeros((0, 4, 4))
        return stamps[order], np.stack(self._pred)[order], np.stack(self._gt)[order]

    def result(self) -> dict[str, float]:
        """``{"ate_m" (SE(3)-aligned), "ate_sim3_m", "ate_unaligned_m", "rpe_trans_m" (RMSE),
        "rpe_rot_deg" (RMSE)}``; all NaN with fewer than 3 poses."""
        keys = ("ate_m", "ate_sim3_m", "ate_unaligned_m", "rpe_trans_m", "rpe_rot_deg")
        if len(self) < 3:
            return dict.fromkeys(keys, math.nan)
        _, pred, gt = self.trajectories()
        rpe = relative_pose_error(pred, gt, self.rpe_delta)
        return dict(zip(keys, (absolute_trajectory_error(pred, gt, "se3"),
                               absolute_trajectory_error(pred, gt, "sim3"),
                               absolute_trajectory_error(pred, gt, "none"),
                               rpe.trans_rmse_m, rpe.rot_rmse_deg)))

    def merge(self, other: TrajectoryAccumulator) -> None:
        """Add ``other``'s frames (another piece of the same sequence, in the same odom frames)."""
        if other.rpe_delta != self.rpe_delta:
            raise ValueError("cannot merge trajectory accumulators with different RPE deltas")
        self._stamps.extend(other._stamps)
        self._pred.extend(other._pred)
        self._gt.extend(other._gt)
