"""The multi-backbone teacher: dedicated single-task networks, each on its own backbone, whose
outputs the unified model is distilled from (the paper's stabiliser for joint training).

Members are :class:`UnifiedModel` instances serving one group of tasks (:data:`TEACHER_GROUPS`).
Loading trained members frozen for a training run is :mod:`unified_perception.train.teachers`.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from unified_perception.contract import Task
from unified_perception.train.model import UnifiedModel, UnifiedOutput, build_unified_model
from unified_perception.train.temporal_state import TemporalState

TEACHER_GROUPS: dict[str, tuple[Task, ...]] = {
    "depth": (Task.DEPTH,),
    "segmentation": (Task.SEMANTIC, Task.INSTANCE, Task.PANOPTIC),
    "motion": (Task.POSE, Task.MOTION, Task.SCENE_FLOW),
}
"""Dedicated teacher members: tasks that share one head are one member. Steering has no teacher:
the paper trains it on the frozen unified encoder."""


class MultiBackboneTeacher(nn.Module):
    """Dedicated networks (each its own backbone) whose outputs the unified model distils from."""

    def __init__(self, members: dict[str, UnifiedModel]) -> None:
        super().__init__()
        self.members = nn.ModuleDict(members)

    def forward(self, image: Tensor, states: dict[str, TemporalState] | None = None
                ) -> tuple[dict[str, UnifiedOutput], dict[str, TemporalState]]:
        """Run every member on ``image``; outputs and next states by member name."""
        outputs, new_states = {}, {}
        for name, member in self.members.items():
            outputs[name], new_states[name] = member(image, None if states is None
                                                     else states.get(name))
        return outputs, new_states


def build_teacher(backbones: str | dict[str, str], input_height: int, input_width: int, *,
                  groups: dict[str, tuple[Task, ...]] = TEACHER_GROUPS, seed: int | None = None,
                  preset: str = "paper", **head_opts: Any) -> MultiBackboneTeacher:
    """The multi-backbone teacher: one dedicated model per group in ``groups``; ``backbones`` is one
    name for all members or ``{group: backbone}``."""
    members = {}
    for i, (name, tasks) in enumerate(groups.items()):
        bb = backbones if isinstance(backbones, str) else backbones[name]
        members[name] = build_unified_model(bb, input_height, input_width, tasks=tasks,
                                            seed=None if seed is None else seed + i,
                                            preset=preset, **head_opts)
    return MultiBackboneTeacher(members)
