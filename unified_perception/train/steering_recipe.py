"""A ``kind: steering`` recipe: the steering stage (train/steering_stage.py) on the recipe's data.

The ``steering`` section holds :class:`~unified_perception.train.steering_stage.SteeringStageConfig`
keys. Where it names no ``sequences``, the recipe's synthetic training bags are used (rendered if
missing); the validation seeds stay out, so the demo's held-out drive is never seen.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from unified_perception.train.data_plan import synthetic_bags
from unified_perception.train.recipe import Recipe
from unified_perception.train.schema import parse_dataclass
from unified_perception.train.steering_stage import SteeringStageConfig, run_steering_stage


def steering_values(recipe: Recipe, render: bool) -> dict[str, Any]:
    """The recipe's ``steering`` section, with its synthetic training bags as ``sequences`` where
    it names none (rendered first when ``render``; named only, for validating a recipe)."""
    values = dict(recipe.steering)
    if not values.get("sequences") and recipe.data.synthetic is not None:
        values["sequences"] = [str(p) for p in synthetic_bags(recipe, render=render)[0]]
    return values


def steering_config(recipe: Recipe, max_steps: int | None = None) -> SteeringStageConfig:
    """The stage's configuration: the recipe's section, its synthetic bags as sequences when none
    are named, and ``max_steps`` (smoke runs) capping both step counts."""
    config = parse_dataclass(SteeringStageConfig, steering_values(recipe, render=True), "steering")
    if max_steps is not None:
        config = dataclasses.replace(config, steps=min(config.steps, max_steps),
                                     finetune_steps=min(config.finetune_steps, max_steps))
    return config


def run_steering_recipe(recipe: Recipe, out_dir: Path, *, max_steps: int | None = None,
                        progress: bool = True) -> None:
    result = run_steering_stage(steering_config(recipe, max_steps), Path(out_dir), progress=progress)
    print(f"steering stage: results in {out_dir}"
          + (f", final checkpoint {result.final_checkpoint}" if result.final_checkpoint else ""))
