"""The pose refit stage: the unified model's pose decoder trained again on its FROZEN encoder.

Why: the student learns ego-motion with batch 4 among eight tasks, and most frame pairs of a drive
go straight, so the decoder fits the straight pairs and under-shoots (or misreads) the yaw of lane
changes and bends. The steering latent reads that yaw (``ego_motion``), so a misread turn becomes a
steering error. Here the encoder is frozen: every frame is encoded ONCE (eval mode, fp16 in memory,
and mirrored left-right when ``mirror``), and only ``model.pose`` trains, with large batches of frame
pairs 1..``frame_gaps`` apart and a loss that weighs each pair by its ground-truth turn:

    loss = rotation_weight * sum_i(w_i * |r_i - r_gt_i|_1) / sum_i(w_i)
           + translation_weight * mean_i |t_i - t_gt_i|_1,       w_i = 1 + turn_emphasis * angle_gt_i / 0.01 rad

(``r``: axis-angle in rad, ``t``: translation in m, of ``T_cam_cur_cam_prev``). A mirrored pair's
ground truth is ``S T S`` with ``S = diag(-1, 1, 1, 1)`` (camera x flipped), the same convention as
the training augmentation (``train/augment.py``).

The stage writes ``pose.pt`` (a copy of the checkpoint with the new decoder, which the steering stage
and ``export`` take), ``pose_results.json`` and ``pose_table.md``: the decoder before and after on
the validation sequences (yaw RMSE and correlation, rotation and translation error per pair).
The motion head takes the pose vector as its seed; ``pose_results.json`` does not score it, so
score the exported model (``unified-perception evaluate``) before shipping it.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from unified_perception.data.sample import POSE_FRAME_CAMERA
from unified_perception.train.geometry import matrix_to_pose_vector
from unified_perception.train.augment import X_MIRROR
from unified_perception.train.frozen_encoder import encode_frames, gather_features, read_samples
from unified_perception.train.refit_loop import fit_head, load_for_refit, refit_state, write_stage
from unified_perception.train.losses.supervised import turn_weight
from unified_perception.train.schema import plain_data
from unified_perception.train.steering_fit import tenth_mean

FINAL_CHECKPOINT = "pose.pt"
RESULTS_JSON = "pose_results.json"
TABLE_MD = "pose_table.md"


class PoseStageError(ValueError):
    """Input the pose stage cannot use (a missing bag, no camera poses, no pose decoder)."""


@dataclass(frozen=True)
class PoseStageConfig:
    """The ``pose:`` section of a ``kind: pose`` recipe (see the module docstring).

    ``checkpoint``: the unified model to refit; ``sequences``: bags with odometry ground truth to
    train on; ``validation``: bags scored before and after (never trained on). ``steps``,
    ``batch_size`` (frame pairs), ``lr``, ``weight_decay``: AdamW on the decoder with a one-cycle
    schedule. ``frame_gaps``: pairs 1..N recorded frames apart (the node drops frames under load).
    """

    checkpoint: Path
    sequences: tuple[Path, ...] = ()
    validation: tuple[Path, ...] = ()
    steps: int = 2000
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 0.01
    frame_gaps: int = 2
    rotation_weight: float = 100.0
    translation_weight: float = 10.0
    turn_emphasis: float = 5.0
    mirror: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        set_("checkpoint", Path(self.checkpoint))
        set_("sequences", tuple(Path(p) for p in self.sequences))
        set_("validation", tuple(Path(p) for p in self.validation))
        if not self.sequences:
            raise ValueError("'sequences' is empty: give bags with odometry ground truth")
        for name in ("steps", "batch_size", "frame_gaps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"'{name}' must be an integer of at least 1, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"'lr' must be positive, got {self.lr!r}")
        for name in ("weight_decay", "rotation_weight", "translation_weight", "turn_emphasis"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"'{name}' must be >= 0, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return plain_data(dataclasses.asdict(self))


@dataclass
class FramePairs:
    """Encoded frames and the pairs over them. ``features``: per encoder level ``[F, C, h, w]``
    fp16; ``prev``/``cur``: ``[P]`` frame indices of each pair; ``target``: ``[P, 6]`` float32
    pose vectors (axis-angle rad, translation m) of ``T_cam_cur_cam_prev``."""

    features: list[Tensor]
    prev: Tensor
    cur: Tensor
    target: Tensor


@dataclass(frozen=True)
class PoseErrors:
    """Errors over the gap-1 pairs of validation sequences: yaw (rotation about camera y, deg) RMSE
    and correlation with the ground truth, mean rotation-vector and translation errors."""

    pairs: int
    yaw_rmse_deg: float
    yaw_corr: float
    rotation_error_deg: float
    translation_error_m: float


@dataclass(frozen=True)
class PoseStageResult:
    before: PoseErrors | None
    after: PoseErrors | None
    train_pairs: int
    loss_start: float
    loss_end: float
    seconds: float
    final_checkpoint: Path
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return plain_data(dataclasses.asdict(self))

    def table(self) -> str:
        lines = [f"Pose decoder refit on the frozen encoder: {self.train_pairs} training pairs, "
                 f"{self.config.get('steps')} steps; validation pairs one frame apart.", "",
                 "| decoder | pairs | yaw RMSE (deg) | yaw corr | rotation error (deg) | "
                 "translation error (m) |", "|---|---|---|---|---|---|"]
        for name, e in (("student", self.before), ("refit", self.after)):
            if e is not None:
                lines.append(f"| {name} | {e.pairs} | {e.yaw_rmse_deg:.3f} | {e.yaw_corr:.2f} | "
                             f"{e.rotation_error_deg:.3f} | {e.translation_error_m:.3f} |")
        return "\n".join(lines) + "\n"


def read_drive(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``[F, H, W, 3]`` uint8 frames at ``size`` and ``[F, 4, 4]`` ``T_odom_cam`` of a bag."""
    samples = read_samples(path, size, PoseStageError)
    if len(samples) < 2 or any(s.poses is None for s in samples):
        raise PoseStageError(f"bag '{path}' has fewer than two frames with camera odometry; the "
                             f"pose stage needs an odometry topic (and the camera's extrinsics)")
    if samples[0].pose_frame != POSE_FRAME_CAMERA:
        raise PoseStageError(f"bag '{path}': poses are in the '{samples[0].pose_frame}' frame; "
                             f"the pose stage needs the camera's pose (give its extrinsics)")
    return (np.stack([s.images[0] for s in samples]),
            np.stack([s.poses[0] for s in samples]).astype(np.float64))


def pair_targets(T_odom_cam: np.ndarray, gap: int, mirror: bool = False) -> np.ndarray:
    """``[F - gap, 6]`` float32 pose vectors of ``T_cam_cur_cam_prev`` for frames ``gap`` apart;
    ``mirror``: of the drive seen in a left-right mirror (``S T S``)."""
    T = np.linalg.inv(T_odom_cam[gap:]) @ T_odom_cam[:-gap]
    if mirror:
        S = X_MIRROR.double().numpy()
        T = S @ T @ S
    return matrix_to_pose_vector(torch.from_numpy(T)).float().numpy()


def build_pairs(model, paths: tuple[Path, ...], size: tuple[int, int], gaps: int, mirror: bool,
                progress: bool, desc: str) -> FramePairs:
    """Every drive of ``paths`` (and its mirror image) encoded, with its pairs 1..``gaps`` apart
    (pairs whose ground truth is missing, as where odometry has a gap, left out)."""
    features, prev, cur, target, base = [], [], [], [], 0
    for path in tqdm(paths, desc=desc, disable=not progress):
        images, poses = read_drive(path, size)
        for flipped in ((False, True) if mirror else (False,)):
            features.append(encode_frames(model, images[:, :, ::-1] if flipped else images))
            for gap in range(1, min(gaps, len(images) - 1) + 1):
                prev.append(np.arange(len(images) - gap) + base)
                cur.append(np.arange(gap, len(images)) + base)
                target.append(pair_targets(poses, gap, flipped))
            base += len(images)
    target = np.concatenate(target)
    known = np.isfinite(target).all(axis=1)
    return FramePairs([torch.cat(level) for level in zip(*features)],
                      torch.from_numpy(np.concatenate(prev)[known]),
                      torch.from_numpy(np.concatenate(cur)[known]), torch.from_numpy(target[known]))


def predict(pose, pairs: FramePairs, index: Tensor) -> Tensor:
    """``[len(index), 6]`` pose vectors of the pairs ``index`` (on the decoder's device)."""
    device = next(pose.parameters()).device
    return pose(gather_features(pairs.features, pairs.prev[index], device),
                gather_features(pairs.features, pairs.cur[index], device)).pose_vector


def pose_loss(prediction: Tensor, target: Tensor, config: PoseStageConfig) -> Tensor:
    """The module docstring's turn-weighted L1 of ``[B, 6]`` pose vectors."""
    error = (prediction - target).abs()
    weight = turn_weight(torch.linalg.vector_norm(target[:, :3], dim=1), config.turn_emphasis)
    rotation = (error[:, :3].sum(1) * weight).sum() / weight.sum()
    return config.rotation_weight * rotation + config.translation_weight * error[:, 3:].sum(1).mean()


@torch.no_grad()
def score(pose, pairs: FramePairs) -> PoseErrors:
    """:class:`PoseErrors` of the decoder (eval mode) over ``pairs``."""
    was_training = pose.training
    pose.eval()
    try:
        index = torch.arange(len(pairs.target))
        pred = torch.cat([predict(pose, pairs, index[s:s + 64]).cpu()
                          for s in range(0, len(index), 64)])
    finally:
        pose.train(was_training)
    gt = pairs.target
    yaw, yaw_gt = np.degrees(pred[:, 1].numpy()), np.degrees(gt[:, 1].numpy())
    corr = float(np.corrcoef(yaw, yaw_gt)[0, 1]) if yaw.std() > 0 and yaw_gt.std() > 0 else 0.0
    return PoseErrors(
        pairs=len(gt), yaw_rmse_deg=float(np.sqrt(np.mean((yaw - yaw_gt) ** 2))), yaw_corr=corr,
        rotation_error_deg=float(np.degrees(float(torch.linalg.vector_norm(
            pred[:, :3] - gt[:, :3], dim=1).mean()))),
        translation_error_m=float(torch.linalg.vector_norm(pred[:, 3:] - gt[:, 3:], dim=1).mean()))


def fit(pose, pairs: FramePairs, config: PoseStageConfig, progress: bool) -> list[float]:
    """Train ``pose`` on ``pairs``; returns the per-step losses."""
    def batch_loss(index: Tensor) -> Tensor:
        prediction = predict(pose, pairs, index)
        return pose_loss(prediction, pairs.target[index].to(prediction.device), config)

    return fit_head(pose, batch_loss, samples=len(pairs.target), steps=config.steps,
                    batch_size=config.batch_size, lr=config.lr, weight_decay=config.weight_decay,
                    seed=config.seed, desc="pose refit", progress=progress)


def run_pose_stage(config: PoseStageConfig, out_dir: Path, progress: bool = True) -> PoseStageResult:
    """Refit the checkpoint's pose decoder; write ``pose.pt``, ``pose_results.json`` and
    ``pose_table.md`` into ``out_dir``."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    payload, model, model_config, size = load_for_refit(config.checkpoint, "pose", "pose decoder",
                                                        PoseStageError, config.seed)
    validation = (build_pairs(model, config.validation, size, 1, False, progress, "encode validation")
                  if config.validation else None)
    before = score(model.pose, validation) if validation else None
    train = build_pairs(model, config.sequences, size, config.frame_gaps, config.mirror, progress,
                        "encode drives")
    losses = fit(model.pose, train, config, progress)
    after = score(model.pose, validation) if validation else None
    state = refit_state(payload, "pose", model.pose, model_config, FINAL_CHECKPOINT)
    result = PoseStageResult(
        before=before, after=after, train_pairs=len(train.target),
        loss_start=tenth_mean(losses, last=False), loss_end=tenth_mean(losses, last=True),
        seconds=time.perf_counter() - started, final_checkpoint=out_dir / FINAL_CHECKPOINT,
        config=config.to_dict())
    write_stage(out_dir, FINAL_CHECKPOINT, {**payload, "model": state, "pose_stage": result.to_dict()},
                RESULTS_JSON, result.to_dict(), TABLE_MD, result.table())
    return result
