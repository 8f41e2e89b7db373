"""Frames of steering sequences and the pooled encoder features of a frozen encoder, cached on disk.

A frozen encoder gives every frame the same features in every fold and every step, so the steering
stage encodes each sequence ONCE: per frame it stores the encoder's spatially pooled features
(:meth:`FrameLatent.pool`, the input of the trainable latent projection) with the frame's steering
angle in an ``.npz`` file. The file name carries a digest of the bag (resolved path, file sizes and
modification times), the input size and the encoder's weights, so a changed bag or another encoder
never reads a stale cache, and a re-run with the same inputs skips the encoder entirely.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from unified_perception.data.rosbag import RosbagSequenceReader
from unified_perception.train.heads.steering import FrameLatent
from unified_perception.train.normalization import ImageNormalization


class SteeringDataError(ValueError):
    """A sequence that cannot serve the steering stage (no steering topic, no frames)."""


@dataclass(frozen=True)
class SequenceFrames:
    """One sequence at the model's input size: ``images`` ``[F, H, W, 3]`` uint8 RGB and
    ``steering_rad`` ``[F]`` float32 (rad, positive left; NaN where the bag has no value)."""

    path: Path
    images: np.ndarray
    steering_rad: np.ndarray


@dataclass(frozen=True)
class SequenceFeatures:
    """One sequence encoded by a frozen encoder: ``pooled`` ``[F, C]`` float32 (C = sum of the
    encoder's channels) and ``steering_rad`` ``[F]`` float32."""

    path: Path
    pooled: np.ndarray
    steering_rad: np.ndarray


def read_sequence(path: Path, size: tuple[int, int], progress: bool = False) -> SequenceFrames:
    """Every camera frame of the bag at ``path`` at ``size`` ``(H, W)``, and its steering angle."""
    reader = RosbagSequenceReader(path, offsets=(0,), size=size)
    with reader:
        if "steering_rad" not in reader.ground_truth():
            raise SteeringDataError(f"bag {path} has no steering topic; the steering stage needs "
                                    f"bags with steering ground truth (or a topic map whose "
                                    f"'steering' key names the bag's steering topic)")
        samples = [reader[i] for i in tqdm(range(len(reader)), desc=f"read {Path(path).name}",
                                           disable=not progress, leave=False)]
    if not samples:
        raise SteeringDataError(f"bag {path} holds no camera frames")
    images = np.stack([s.images[0] for s in samples])
    steering = np.array([s.steering_rad[0] for s in samples], dtype=np.float32)
    if not np.isfinite(steering).any():
        raise SteeringDataError(f"bag {path}: no camera frame has a steering value within the "
                                f"reader's match tolerance")
    return SequenceFrames(Path(path), images, steering)


def encoder_digest(encoder: nn.Module) -> str:
    """sha256 of the encoder's state (names, shapes, dtypes and bytes of every tensor)."""
    digest = hashlib.sha256()
    for name, tensor in encoder.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(value.shape)}:{value.dtype};".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def bag_digest(path: Path) -> str:
    """sha256 of a bag's resolved path and the names, sizes and mtimes of its files."""
    path = Path(path).resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256(str(path).encode())
    for item in files:
        stat = item.stat()
        digest.update(f"{item.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()


@torch.no_grad()
def pool_features(normalize: ImageNormalization, encoder: nn.Module, images: np.ndarray,
                  device: torch.device, columns: int = 1, batch_size: int = 16,
                  pose: nn.Module | None = None) -> np.ndarray:
    """``[F, H, W, 3]`` uint8 frames of one sequence, in order -> ``[F, C]`` float32 pooled
    features (:meth:`FrameLatent.pool` over ``columns`` strips), the encoder in eval mode (its
    batch-norm statistics untouched; the caller's mode is restored afterwards). With ``pose`` (a
    pose decoder on the same encoder) each row also ends with the frame's ego-motion ``[6]`` from
    the frame before it (zeros for the first frame), as :class:`FrameLatent` takes it."""
    modules = [m for m in (encoder, pose) if m is not None]
    was_training = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        chunks, previous = [], None
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(images[start:start + batch_size]).to(device)
            features = encoder(normalize(x))
            pooled = FrameLatent.pool(features, columns)
            if pose is not None:
                pooled = torch.cat([pooled, _ego_motion(pose, features, previous)], dim=1)
                previous = [f[-1:] for f in features]
            chunks.append(pooled.float().cpu())
        return torch.cat(chunks).numpy()
    finally:
        for m, mode in zip(modules, was_training):
            m.train(mode)


def _ego_motion(pose: nn.Module, features: list[torch.Tensor],
                previous: list[torch.Tensor] | None) -> torch.Tensor:
    """``[B, 6]`` ego-motion of each frame of a chunk from the frame before it; ``previous`` holds
    the features of the frame before the chunk (None at the start: that row is zeros)."""
    if previous is None:
        prev = [torch.cat([f[:1], f[:-1]]) for f in features]
    else:
        prev = [torch.cat([p, f[:-1]]) for p, f in zip(previous, features)]
    ego = pose(prev, features).pose_vector
    if previous is None:
        ego = torch.cat([torch.zeros_like(ego[:1]), ego[1:]])
    return ego


class FeatureCache:
    """Pooled features of frozen encoders per sequence, as ``.npz`` files in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def file_for(self, path: Path, size: tuple[int, int], encoder_key: str) -> Path:
        key = hashlib.sha256(f"{bag_digest(path)}:{size[0]}x{size[1]}:{encoder_key}".encode())
        return self.folder / f"{Path(path).resolve().name}-{key.hexdigest()[:20]}.npz"

    def features(self, path: Path, size: tuple[int, int], encoder_key: str,
                 frames: Callable[[Path], SequenceFrames],
                 encode: Callable[[np.ndarray], np.ndarray]) -> SequenceFeatures:
        """The cached features of ``path``, or ``encode(frames(path).images)`` stored first."""
        file = self.file_for(path, size, encoder_key)
        if file.is_file():
            with np.load(file) as stored:
                return SequenceFeatures(Path(path), stored["pooled"], stored["steering_rad"])
        sequence = frames(path)
        features = SequenceFeatures(Path(path), encode(sequence.images), sequence.steering_rad)
        self._write(file, features)
        return features

    def _write(self, file: Path, features: SequenceFeatures) -> None:
        """Temporary file + rename: an interrupted run never leaves a truncated cache entry."""
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{file.stem}.", suffix=".npz", dir=file.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, pooled=features.pooled, steering_rad=features.steering_rad,
                         bag=str(features.path))
            os.replace(tmp, file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
