"""The multi-backbone teacher at training time: dedicated models loaded FROZEN from checkpoints.

Each member is a dedicated model (its own backbone) trained by the same trainer from its own recipe
(``config/train/*teacher*.yaml``) and saved as a checkpoint. :class:`FrozenTeacher` runs every
member over the training window without gradients and merges their outputs into one
:class:`~unified_perception.train.window_forward.WindowOutput`: each field comes from the member
that serves it, so the distillation losses see one teacher with every output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from unified_perception.train.checkpoint import load_checkpoint, model_from_checkpoint
from unified_perception.train.losses.distillation import merge_teacher_outputs
from unified_perception.train.model import UnifiedModel
from unified_perception.train.multi_backbone_teacher import MultiBackboneTeacher
from unified_perception.train.window_forward import WindowOutput, window_forward


class FrozenTeacher(nn.Module):
    """Frozen members (eval mode, no gradients) whose merged window outputs are distilled."""

    def __init__(self, members: Mapping[str, UnifiedModel]) -> None:
        super().__init__()
        self.teacher = MultiBackboneTeacher(dict(members))
        self.teacher.eval()
        for param in self.teacher.parameters():
            param.requires_grad_(False)

    def train(self, mode: bool = True) -> "FrozenTeacher":
        """Always stays in eval mode (batch-norm statistics are part of what was learnt)."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, offsets: tuple[int, ...]) -> WindowOutput:
        return merge_teacher_outputs({name: window_forward(member, images, offsets)
                                      for name, member in self.teacher.members.items()})

def load_teacher(paths: Mapping[str, str | Path]) -> FrozenTeacher:
    """``{member name: checkpoint path}`` -> the frozen multi-backbone teacher."""
    members = {}
    for name, path in paths.items():
        members[name] = model_from_checkpoint(load_checkpoint(path), path)
    return FrozenTeacher(members)
