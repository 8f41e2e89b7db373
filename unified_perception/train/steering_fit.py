"""The steering head over windows of frames, and its training loop (AdamW, cosine schedule).

:class:`WindowSteering` maps a batch of windows of global frame indices ``[B, T]`` to steering
angles ``[B]`` the way the exported model does frame by frame: pooled encoder features of each
frame -> ``latent.project`` -> the latent window (zeros in empty slots, as the car's start-up
state) -> :class:`AttentionPoolSteering` with the slot mask. Where the pooled features come from is
the only difference between the stage's modes: a cached table of a frozen encoder
(:class:`CachedFeatures`) or a trainable encoder run on the frames' images
(:class:`EncodedFeatures`, end-to-end fine-tuning). Each frame of a batch is encoded once even
when several windows share it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from unified_perception.train.heads.steering import (EGO_MOTION_DIMS, AttentionPoolSteering,
                                                    FrameLatent)
from unified_perception.train.normalization import ImageNormalization
from unified_perception.train.steering_windows import WindowSet

PREDICT_BATCH = 256


class CachedFeatures:
    """Pooled features of a frozen encoder: ``pooled`` ``[F, C]`` float32 by global frame index."""

    def __init__(self, pooled: Tensor) -> None:
        self.pooled = pooled

    def __call__(self, frames: Tensor) -> Tensor:
        """``[K]`` int64 global frame indices -> ``[K, C]``."""
        return self.pooled[frames.to(self.pooled.device)]


class EncodedFeatures(nn.Module):
    """A trainable encoder run on the frames' images ``[F, H, W, 3]`` uint8 (kept on the CPU, moved
    per batch). Batch-norm statistics stay frozen (the encoder is kept in eval mode; its weights
    still train): batches of a few near-identical window frames would give poor statistics."""

    def __init__(self, normalize: ImageNormalization, encoder: nn.Module, images: Tensor,
                 columns: int = 1, ego_motion: Tensor | None = None) -> None:
        super().__init__()
        self.normalize, self.encoder = normalize, encoder
        self.images, self.columns = images, columns
        self.ego_motion = ego_motion
        """``[F, 6]`` per frame, appended to the pooled features (a frozen pose decoder's)."""

    def train(self, mode: bool = True) -> "EncodedFeatures":
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(self, frames: Tensor) -> Tensor:
        """``[K]`` int64 global frame indices -> ``[K, C]`` pooled features."""
        device = self.normalize.shift.device
        x = self.images[frames.cpu()].to(device)
        pooled = FrameLatent.pool(self.encoder(self.normalize(x)), self.columns)
        if self.ego_motion is None:
            return pooled
        return torch.cat([pooled, self.ego_motion[frames.cpu()].to(device, pooled.dtype)], dim=1)


class WindowSteering(nn.Module):
    """Windows of global frame indices ``[B, T]`` (-1 = empty slot) -> steering ``[B]`` rad."""

    def __init__(self, latent: FrameLatent, steering: AttentionPoolSteering,
                 features: CachedFeatures | EncodedFeatures) -> None:
        super().__init__()
        self.latent, self.steering, self.features = latent, steering, features

    def forward(self, frames: Tensor) -> Tensor:
        valid = frames >= 0                                                  # [B, T] bool
        unique, inverse = torch.unique(frames[valid], return_inverse=True)   # each frame once
        pooled = self.features(unique)                                       # [U, C]
        projected = self.latent.project(pooled)                              # [U, D]
        latents = projected.new_zeros(*frames.shape, projected.shape[-1])    # [B, T, D]
        latents[valid] = projected[inverse]
        ego = None
        if self.steering.kinematic:   # the newest slot's ego-motion (the pooled row's last 6)
            ego = pooled[torch.searchsorted(unique, frames[:, -1].contiguous()), -EGO_MOTION_DIMS:]
        return self.steering(latents, valid.to(latents.dtype), ego)[:, 0]


@dataclass(frozen=True)
class FitSettings:
    """Optimisation of one fit: ``steps`` AdamW steps of ``batch_size`` windows at ``lr``
    (``encoder_lr`` for a trainable encoder), decoupled ``weight_decay`` on weight matrices (not on
    biases / norms), linear warm-up then cosine decay to zero (:func:`warmup_cosine`), ``seed``
    for the batch order."""

    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int
    encoder_lr: float | None = None


def start_at_mean(steering: AttentionPoolSteering, mean_rad: float) -> None:
    """Make the head start as the mean-angle baseline: output layer weights zero (gradients still
    reach them through the hidden activations), bias the training mean angle (rad)."""
    with torch.no_grad():
        steering.out[-1].weight.zero_()
        steering.out[-1].bias.fill_(mean_rad)


STATISTICS_FRAMES = 512


@torch.no_grad()
def standardize_projection(module: WindowSteering, windows: WindowSet) -> None:
    """Data-dependent init of the latent projection: fold the per-channel mean and standard
    deviation of the pooled features of the training frames (at most :data:`STATISTICS_FRAMES`,
    evenly spaced) into ``latent.project``'s Linear, so it starts on standardised inputs whatever
    the encoder's feature scale (random, ImageNet or unified; one recipe fits every mode). The
    exported graph is unchanged: the statistics live in the Linear's weight and bias."""
    frames = np.unique(windows.frames[windows.frames >= 0])
    pick = np.linspace(0, frames.size - 1, min(frames.size, STATISTICS_FRAMES)).astype(np.int64)
    frames = frames[pick]
    was_training = module.training
    module.eval()
    pooled = module.features(torch.from_numpy(frames)).float()            # [K, C]
    module.train(was_training)
    mean, std = pooled.mean(0), pooled.std(0, unbiased=False)
    ego = EGO_MOTION_DIMS if module.latent.ego_motion else 0
    features = pooled.shape[1] - ego
    # Near-constant pooled channels stay tame; the ego-motion inputs (radians and metres, far
    # smaller than the features) are standardised on their own.
    std[:features] = torch.clamp(std[:features], min=0.1 * float(std[:features].mean()) + 1e-12)
    std[features:] = torch.clamp(std[features:], min=1e-6)
    linear = module.latent.project[0]
    weight = linear.weight / std.to(linear.weight.dtype)                    # [D, C]
    # The 6 ego-motion inputs start with as much weight in the latent as the thousands of pooled
    # features together (else they are a rounding error of the projection).
    weight[:, features:] *= math.sqrt(features / max(ego, 1))
    linear.bias -= weight @ mean.to(weight.dtype)
    linear.weight.copy_(weight)


def _param_groups(module: WindowSteering, settings: FitSettings) -> list[dict]:
    def split(params: list[nn.Parameter], lr: float) -> list[dict]:
        return [{"params": [p for p in params if p.ndim > 1], "lr": lr,
                 "weight_decay": settings.weight_decay},
                {"params": [p for p in params if p.ndim <= 1], "lr": lr, "weight_decay": 0.0}]

    head = [p for m in (module.latent, module.steering) for p in m.parameters()]
    groups = split(head, settings.lr)
    if isinstance(module.features, EncodedFeatures):
        encoder = [p for p in module.features.encoder.parameters() if p.requires_grad]
        lr = settings.encoder_lr if settings.encoder_lr is not None else settings.lr
        groups += split(encoder, lr)
    return [g for g in groups if g["params"]]


def warmup_cosine(steps: int, warmup_fraction: float = 0.05) -> Callable[[int], float]:
    """Learning-rate factor of step i: linear warm-up over the first ``warmup_fraction`` of the
    steps, then cosine decay to zero at ``steps``."""
    warmup = max(1, int(round(steps * warmup_fraction)))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
    return factor


def fit(module: WindowSteering, windows: WindowSet, settings: FitSettings,
        device: torch.device, desc: str = "steering", progress: bool = True) -> list[float]:
    """Train ``module`` on ``windows`` (mean squared error in degrees²); per-step losses (deg²)."""
    if len(windows) == 0:
        raise ValueError("no training windows: the training sequences have no steering values")
    optimizer = torch.optim.AdamW(_param_groups(module, settings), lr=settings.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(settings.steps))
    generator = torch.Generator().manual_seed(settings.seed)
    frames = torch.from_numpy(windows.frames)
    target_deg = torch.from_numpy(np.degrees(windows.target_rad).astype(np.float32)).to(device)
    module.train()
    losses = []
    for _ in tqdm(range(settings.steps), desc=desc, disable=not progress, leave=False):
        pick = torch.randint(len(windows), (settings.batch_size,), generator=generator)
        pred_deg = module(frames[pick].to(device)) * (180.0 / math.pi)
        loss = torch.mean((pred_deg - target_deg[pick.to(device)]) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    return losses


@torch.no_grad()
def predict(module: WindowSteering, windows: WindowSet, device: torch.device) -> np.ndarray:
    """Steering ``[S]`` rad of every window, in eval mode."""
    module.eval()
    frames = torch.from_numpy(windows.frames)
    out = [module(frames[i:i + PREDICT_BATCH].to(device)).float().cpu()
           for i in range(0, len(windows), PREDICT_BATCH)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def tenth_mean(losses: list[float], last: bool) -> float:
    """Mean of the first or last tenth of a fit's per-step losses (at least one step)."""
    tenth = max(1, len(losses) // 10)
    return float(np.mean(losses[-tenth:] if last else losses[:tenth]))
