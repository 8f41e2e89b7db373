"""A ``kind: pose`` recipe: the pose refit stage (train/pose_stage.py) on the recipe's data.

The ``pose`` section holds :class:`~unified_perception.train.pose_stage.PoseStageConfig` keys.
Where it names no ``sequences`` (or ``validation``), the recipe's synthetic training (validation)
bags are used, rendered if missing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from unified_perception.train.data_plan import synthetic_bags
from unified_perception.train.recipe import Recipe
from unified_perception.train.schema import parse_dataclass
from unified_perception.train.pose_stage import PoseStageConfig, run_pose_stage


def pose_values(recipe: Recipe, render: bool) -> dict[str, Any]:
    """The recipe's ``pose`` section, with its synthetic bags as ``sequences`` / ``validation``
    where it names none (rendered first when ``render``; named only, for validating a recipe)."""
    values = dict(recipe.pose)
    if recipe.data.synthetic is not None:
        train, validation = synthetic_bags(recipe, render=render)
        values.setdefault("sequences", [str(p) for p in train])
        values.setdefault("validation", [str(p) for p in validation])
    return values


def run_pose_recipe(recipe: Recipe, out_dir: Path, *, max_steps: int | None = None,
                    progress: bool = True) -> None:
    config = parse_dataclass(PoseStageConfig, pose_values(recipe, render=True), "pose")
    if max_steps is not None:
        config = dataclasses.replace(config, steps=min(config.steps, max_steps))
    result = run_pose_stage(config, Path(out_dir), progress=progress)
    print(f"pose stage: results in {out_dir}, checkpoint {result.final_checkpoint}")
    print(result.table())
