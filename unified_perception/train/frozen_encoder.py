"""Whole drives read and encoded once, for the stages that refit one head on a FROZEN encoder
(train/pose_stage.py, train/depth_stage.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from unified_perception.data.rosbag import RosbagSequenceReader
from unified_perception.data.sample import Sample


def read_samples(path: Path, size: tuple[int, int], error: type[Exception]) -> list[Sample]:
    """Every frame of the bag ``path`` as a one-frame :class:`Sample` at ``size`` (H, W); raises
    ``error`` when the bag is not there."""
    if not Path(path).exists():
        raise error(f"bag '{path}' not found; give existing bag folders")
    reader = RosbagSequenceReader(Path(path), offsets=(0,), size=size)
    with reader:
        return [reader[i] for i in range(len(reader))]


@torch.no_grad()
def encode_frames(model, images: np.ndarray, batch_size: int = 16) -> list[Tensor]:
    """Encoder features (eval mode) of ``[F, H, W, 3]`` uint8 frames: per encoder level
    ``[F, C, h, w]`` fp16, kept on the CPU (the model may be on a GPU)."""
    device = next(model.parameters()).device
    chunks = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device)
        chunks.append([f.half().cpu() for f in model.encoder(model.normalize(x))])
    return [torch.cat(level) for level in zip(*chunks)]


def gather_features(features: list[Tensor], index: Tensor, device: torch.device) -> list[Tensor]:
    """Rows ``index`` of every level of :func:`encode_frames`'s features, as float32 on ``device``."""
    return [f[index].to(device).float() for f in features]
