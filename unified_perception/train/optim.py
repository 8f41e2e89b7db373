"""Optimiser and learning-rate schedule of the trainer.

AdamW (Loshchilov & Hutter 2019) with two parameter groups: the encoder at ``backbone_lr_scale`` x
the base rate (the paper's release uses 0.1), everything else at the base rate; norms and biases
get no weight decay. The schedule warms up linearly over ``warmup_steps`` and then decays with a
cosine to ``min_lr_ratio`` x the base rate at ``steps``.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from unified_perception.train.recipe import OptimSection


def parameter_groups(model: nn.Module, optim: OptimSection, extra: Iterable[nn.Parameter] = (),
                     encoder_prefix: str = "encoder.") -> list[dict]:
    """AdamW groups: (encoder | heads) x (decayed | not decayed), plus ``extra`` (e.g. learnable
    loss weights) at the base rate without decay. Frozen parameters are left out."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_encoder = name.startswith(encoder_prefix) or f".{encoder_prefix}" in name
        no_decay = param.ndim <= 1
        groups.setdefault((is_encoder, no_decay), []).append(param)
    out = []
    for (is_encoder, no_decay), params in sorted(groups.items()):
        out.append({"params": params,
                    "lr": optim.lr * (optim.backbone_lr_scale if is_encoder else 1.0),
                    "weight_decay": 0.0 if no_decay else optim.weight_decay,
                    "name": f"{'encoder' if is_encoder else 'heads'}{'_no_decay' if no_decay else ''}"})
    extra = [p for p in extra if p.requires_grad]
    if extra:
        out.append({"params": extra, "lr": optim.lr, "weight_decay": 0.0, "name": "loss_weights"})
    return out


def build_optimizer(model: nn.Module, optim: OptimSection,
                    extra: Iterable[nn.Parameter] = ()) -> torch.optim.AdamW:
    return torch.optim.AdamW(parameter_groups(model, optim, extra), lr=optim.lr,
                             weight_decay=optim.weight_decay)


def lr_factor(step: int, optim: OptimSection) -> float:
    """Multiplier of each group's base rate at ``step`` (0-based): linear warmup, cosine decay."""
    if optim.warmup_steps > 0 and step < optim.warmup_steps:
        return (step + 1) / optim.warmup_steps
    span = max(optim.steps - optim.warmup_steps, 1)
    progress = min(max(step - optim.warmup_steps, 0) / span, 1.0)
    return optim.min_lr_ratio + (1.0 - optim.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, optim: OptimSection
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, optim))
