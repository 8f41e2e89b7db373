"""``kind: pose`` and ``kind: depth`` recipes: the refit stages (train/pose_stage.py,
train/depth_stage.py) on the recipe's data.

The recipe's ``pose`` / ``depth`` section holds the stage's config keys
(:class:`~unified_perception.train.pose_stage.PoseStageConfig`,
:class:`~unified_perception.train.depth_stage.DepthStageConfig`). Where it names no ``sequences``
(or ``validation``), the recipe's synthetic training (validation) bags are used, rendered if missing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from unified_perception.train.data_plan import synthetic_bags
from unified_perception.train.recipe import Recipe
from unified_perception.train.schema import parse_dataclass


def stage_values(recipe: Recipe, render: bool) -> dict[str, Any]:
    """The recipe's stage section (``pose`` or ``depth``, by its kind), with the recipe's synthetic
    bags as ``sequences`` / ``validation`` where it names none (rendered first when ``render``;
    named only, for validating a recipe)."""
    values = dict(getattr(recipe, recipe.kind))
    if recipe.data.synthetic is not None:
        train, validation = synthetic_bags(recipe, render=render)
        values.setdefault("sequences", [str(p) for p in train])
        values.setdefault("validation", [str(p) for p in validation])
    return values


def _stage(kind: str) -> tuple[type, Callable[..., Any]]:
    """The config dataclass and the run function of the refit stage ``kind``."""
    if kind == "pose":
        from unified_perception.train.pose_stage import PoseStageConfig, run_pose_stage
        return PoseStageConfig, run_pose_stage
    if kind == "depth":
        from unified_perception.train.depth_stage import DepthStageConfig, run_depth_stage
        return DepthStageConfig, run_depth_stage
    raise ValueError(f"recipe kind '{kind}' is not a refit stage")


def stage_config(recipe: Recipe, render: bool):
    """The recipe's validated stage config (its kind's dataclass)."""
    config_class, _ = _stage(recipe.kind)
    return parse_dataclass(config_class, stage_values(recipe, render), recipe.kind)


def run_refit_recipe(recipe: Recipe, out_dir: Path, *, max_steps: int | None = None,
                     progress: bool = True) -> None:
    """Run the recipe's refit stage into ``out_dir`` (at most ``max_steps`` steps) and print its table."""
    config = stage_config(recipe, render=True)
    if max_steps is not None:
        config = dataclasses.replace(config, steps=min(config.steps, max_steps))
    result = _stage(recipe.kind)[1](config, Path(out_dir), progress=progress)
    print(f"{recipe.kind} stage: results in {out_dir}, checkpoint {result.final_checkpoint}")
    print(result.table())
