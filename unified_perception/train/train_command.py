"""`unified-perception train --recipe config/train/NAME.yaml --out runs/NAME [--resume]`.

Runs one recipe: a perception model (teacher or distilled student), the pose refit, depth refit
or steering stage, or a chain of recipes in order. The same command runs in one process or under
``torchrun --nproc_per_node N -m unified_perception.cli train ...`` (DistributedDataParallel).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DONE_MARKER = "done.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", required=True, type=Path, help="recipe YAML (config/train/*.yaml)")
    parser.add_argument("--out", required=True, type=Path, help="run folder (checkpoints, logs)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/latest.pt (a chain skips finished stages)")
    parser.add_argument("--steps", type=int, help="stop after this many steps (smoke runs)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--threads", type=int,
                        help="CPU threads per process for torch (default: torch's choice, one per "
                             "core); 1 is faster when other work shares the cores")


def main(args: argparse.Namespace) -> int:
    from unified_perception.train.checkpoint import CheckpointError
    from unified_perception.train.recipe import RecipeError, load_recipe
    from unified_perception.train.trainer import TrainingError
    from unified_perception.data.errors import DatasetError
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    try:
        recipe = load_recipe(args.recipe, out_root=args.out.parent)
        run_recipe(recipe, args.out, resume=args.resume, max_steps=args.steps,
                   progress=not args.quiet)
    except (RecipeError, TrainingError, CheckpointError, DatasetError) as err:
        print(f"unified-perception train: {err}", file=sys.stderr)
        return 2
    return 0


def run_recipe(recipe, out_dir: Path, *, resume: bool = False, max_steps: int | None = None,
               progress: bool = True) -> Path:
    """Run ``recipe`` into ``out_dir``; returns ``out_dir``."""
    if recipe.kind == "chain":
        return run_chain(recipe, out_dir, resume=resume, max_steps=max_steps, progress=progress)
    if recipe.kind == "steering":
        from unified_perception.train.steering_recipe import run_steering_recipe
        run_steering_recipe(recipe, out_dir, max_steps=max_steps, progress=progress)
        return out_dir
    if recipe.kind in ("pose", "depth"):
        from unified_perception.train.refit_recipe import run_refit_recipe
        run_refit_recipe(recipe, out_dir, max_steps=max_steps, progress=progress)
        return out_dir
    from unified_perception.train.distributed import init_distributed, shutdown
    from unified_perception.train.trainer import Trainer
    ctx = init_distributed()
    try:
        Trainer(recipe, out_dir, resume=resume, progress=progress, ctx=ctx,
                max_steps=max_steps).run()
    finally:
        shutdown(ctx)
    return out_dir


def run_chain(recipe, out_dir: Path, *, resume: bool, max_steps: int | None,
              progress: bool) -> Path:
    """Each stage into ``out_dir/<stage recipe name>``; with ``resume``, finished stages are kept
    and an interrupted one continues from its latest.pt."""
    from unified_perception.train.recipe import load_recipe
    base = recipe.source.parent if recipe.source else Path(".")
    for stage_path in recipe.stages:
        path = stage_path if stage_path.is_absolute() or stage_path.exists() else base / stage_path
        stage = load_recipe(path, out_root=out_dir)
        stage_out = out_dir / stage.name
        if resume and (stage_out / DONE_MARKER).is_file():
            print(f"chain {recipe.name}: stage {stage.name} already done", file=sys.stderr)
            continue
        print(f"chain {recipe.name}: stage {stage.name} -> {stage_out}", file=sys.stderr)
        stage_resume = resume and (stage_out / "latest.pt").is_file()
        run_recipe(stage, stage_out, resume=stage_resume, max_steps=max_steps, progress=progress)
        stage_out.mkdir(parents=True, exist_ok=True)
        (stage_out / DONE_MARKER).write_text(json.dumps({"stage": stage.name}))
    return out_dir
