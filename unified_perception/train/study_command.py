"""`unified-perception study {distillation,steering,heads}`: regenerate the tables of the paper's two
claims at small scale, and of the car's head choices, training whatever run is missing first.

* ``distillation``: the unified student trained WITH the multi-backbone teacher
  (``synthetic_student.yaml``) and WITHOUT it (``synthetic_student_no_distill.yaml``: same data,
  steps and losses), both scored frame by frame on held-out drives (the validation seed and the demo
  seed, never trained on) with the validation's metrics, every task side by side with its baseline.
* ``steering``: the steering stage's k-fold table (frozen unified encoder vs the encoder fine-tuned
  vs a frozen encoder not trained on the driving tasks), from ``synthetic_steering.yaml``.
* ``heads``: the car's ``light`` heads (``synthetic_heads_light.yaml``) against the paper release's
  (``synthetic_heads_paper.yaml``), both trained on the same frozen encoder (the distilled
  student's) with the same data, schedule and losses, scored on the held-out drives like the
  distillation study.

Each writes Markdown + JSON into ``--out`` (default ``docs/studies``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

RECIPES = Path("config/train")
CHAIN = "synthetic_chain.yaml"
WITH_TEACHERS = "synthetic_student.yaml"
WITHOUT_TEACHERS = "synthetic_student_no_distill.yaml"
STEERING = "synthetic_steering.yaml"
HEADS_LIGHT = "synthetic_heads_light.yaml"
HEADS_PAPER = "synthetic_heads_paper.yaml"
HELD_OUT_SEEDS = (100, 2028)
"""The validation seed of the synthetic recipes and the demo's drive (both never trained on)."""
TABLE_METRICS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "depth": (("abs_rel", "AbsRel", False), ("rmse", "RMSE (m)", False), ("a1", "δ<1.25", True)),
    "semantic": (("miou", "mIoU", True),),
    "panoptic": (("pq", "PQ", True), ("sq", "SQ", True), ("rq", "RQ", True)),
    "motion": (("iou", "IoU", True), ("precision", "precision", True), ("recall", "recall", True)),
    "scene_flow": (("epe3d", "EPE3D (m)", False), ("acc_relaxed", "acc. relaxed", True)),
    "odometry": (("rpe_trans_m", "RPE trans. (m)", False), ("rpe_rot_deg", "RPE rot. (deg)", False),
                 ("ate_sim3_m", "ATE Sim(3) (m)", False)),
}
"""Task -> (metric key, column label, higher is better) shown in the distillation table."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", choices=tuple(STUDIES))
    parser.add_argument("--runs", type=Path, default=Path("runs/synthetic"),
                        help="the synthetic chain's run folder (missing runs are trained into it)")
    parser.add_argument("--recipes", type=Path, default=RECIPES, help="recipe folder")
    parser.add_argument("--out", type=Path, default=Path("docs/studies"), help="table folder")
    parser.add_argument("--frames", type=int, default=100, help="frames per held-out drive")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    import torch

    from unified_perception.train.checkpoint import CheckpointError
    from unified_perception.train.recipe import RecipeError
    from unified_perception.train.trainer import TrainingError
    torch.set_num_threads(args.threads)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        path = STUDIES[args.study](args)
    except (RecipeError, TrainingError, CheckpointError) as err:
        print(f"unified-perception study: {err}", file=sys.stderr)
        return 2
    print(path.read_text())
    print(f"study: table written to {path}")
    return 0


def ensure_trained(recipe_name: str, args: argparse.Namespace) -> Path:
    """The run folder of ``recipe_name`` under ``--runs``, trained (with its stages' recipes
    resolved against the chain folder) when it has not finished yet."""
    from unified_perception.train.recipe import load_recipe
    from unified_perception.train.train_command import DONE_MARKER, run_recipe
    recipe = load_recipe(args.recipes / recipe_name, out_root=args.runs)
    out = args.runs / recipe.name
    if not is_finished(recipe, out):
        for checkpoint in checkpoints_read(recipe):   # earlier stages first (their own recipes)
            if not Path(checkpoint).is_file():
                ensure_trained(f"{Path(checkpoint).parent.name}.yaml", args)
        print(f"study: training {recipe.name} into {out}", file=sys.stderr)
        run_recipe(recipe, out, resume=(out / "latest.pt").is_file(), progress=not args.quiet)
        (out / DONE_MARKER).write_text(json.dumps({"stage": recipe.name}))
    return out


def checkpoints_read(recipe) -> list[Path]:
    """The earlier stages' checkpoints ``recipe`` starts from: its teachers, its initial weights
    (``model.init_checkpoint``, ``model.init_encoder``) and the pose, depth and steering stages'
    ``checkpoint``."""
    paths = [*recipe.teachers.values(), recipe.model.init_checkpoint, recipe.model.init_encoder,
             recipe.steering.get("checkpoint"), recipe.pose.get("checkpoint"),
             recipe.depth.get("checkpoint")]
    return [Path(p) for p in paths if p]


def is_finished(recipe, out: Path) -> bool:
    """Whether ``out`` holds a finished run of ``recipe`` (its done marker, the steering stage's
    results, or a latest.pt at the recipe's last step)."""
    from unified_perception.train.train_command import DONE_MARKER
    results = {"steering": "steering_results.json", "pose": "pose_results.json",
               "depth": "depth_results.json"}.get(recipe.kind)
    if (out / DONE_MARKER).is_file() or (results is not None and (out / results).is_file()):
        return True
    if not (out / "latest.pt").is_file():
        return False
    from unified_perception.train.checkpoint import load_checkpoint
    return int(load_checkpoint(out / "latest.pt").get("step", -1)) >= recipe.optim.steps


def held_out_validator(args: argparse.Namespace, size: tuple[int, int]):
    """Validation frames of the held-out drives at the model size (rendered once under --runs)."""
    from unified_perception.data.factory import open_dataset
    from unified_perception.train.synthetic_bags import render_synthetic_bags
    from unified_perception.train.validation import Validator
    bags = render_synthetic_bags(args.runs / "held_out", HELD_OUT_SEEDS, args.frames, size)
    return Validator([open_dataset("rosbag", p, offsets=(0,), size=size) for p in bags]), bags


def scored_runs(args: argparse.Namespace, runs: dict[str, Path]) -> dict[str, Any]:
    """Each run's ``best.pt`` scored on the held-out drives (with the baselines), by label."""
    from unified_perception.train.checkpoint import load_checkpoint, model_from_checkpoint
    results: dict[str, Any] = {}
    validator = bags = None
    for label, run in runs.items():
        payload = load_checkpoint(run / "best.pt")
        model = model_from_checkpoint(payload, run / "best.pt")
        if validator is None:
            validator, bags = held_out_validator(args, (model.input_height, model.input_width))
        scored = validator.run(model)
        results[label] = {"checkpoint": str(run / "best.pt"), "step": payload.get("step"),
                          "metrics": scored.model}
        results["baseline"] = {"metrics": scored.baseline}
    results["held_out"] = [str(b) for b in bags]
    return results


def two_run_study(args: argparse.Namespace, name: str, recipes: dict[str, str], title: str,
                  change: bool = False) -> Path:
    """Train (if missing) and score the two runs of ``recipes`` (label -> recipe file), write
    ``<name>.json`` and ``<name>.md`` (``title`` with ``{steps}`` and ``{drives}`` filled in)."""
    runs = {label: ensure_trained(recipe, args) for label, recipe in recipes.items()}
    results = scored_runs(args, runs)
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    steps = " and ".join(str(results[label]["step"]) for label in runs)
    drives = ", ".join(Path(b).name for b in results["held_out"])
    path = args.out / f"{name}.md"
    path.write_text(comparison_table(results, tuple(runs), title.format(steps=steps, drives=drives),
                                     change=change))
    return path


def distillation_study(args: argparse.Namespace) -> Path:
    return two_run_study(
        args, "distillation", {"with teachers": WITH_TEACHERS, "without teachers": WITHOUT_TEACHERS},
        "Distillation study: the unified student with and without the multi-backbone teacher "
        "(steps {steps} of the same schedule), scored on the held-out drives {drives}.")


def heads_study(args: argparse.Namespace) -> Path:
    return two_run_study(
        args, "heads", {"light heads": HEADS_LIGHT, "paper heads": HEADS_PAPER},
        "Head study: the car's `light` heads against the paper release's heads, each trained on the "
        "SAME frozen encoder (the distilled student's) with the same data, schedule and losses "
        "(best steps {steps}), scored on the held-out drives {drives}. 'change' is light against "
        "paper, relative; negative = light is worse.", change=True)


def comparison_table(results: dict[str, Any], labels: tuple[str, str], title: str,
                     change: bool = False) -> str:
    """Markdown: task | metric | the two runs | (relative change of the first vs the second) |
    baseline; the better run in bold."""
    lines = [title, "", f"| task | metric | {labels[0]} | {labels[1]} |"
             + (" change |" if change else "") + " baseline |",
             "|---|---|---|---|" + ("---|" if change else "") + "---|"]
    for task, metrics in TABLE_METRICS.items():
        for key, label, higher in metrics:
            values = [results[k]["metrics"].get(task, {}).get(key) for k in (*labels, "baseline")]
            if values[0] is None or values[1] is None:
                continue
            best = max(values[:2]) if higher else min(values[:2])
            cells = [(f"**{v:.3f}**" if v == best and values[0] != values[1] else f"{v:.3f}")
                     for v in values[:2]]
            if change:
                gain = (values[0] - values[1]) / abs(values[1]) if values[1] else float("nan")
                cells.append(f"{(gain if higher else -gain):+.1%}")
            base = f"{values[2]:.3f}" if isinstance(values[2], (int, float)) else "–"
            lines.append(f"| {task} | {label} {'↑' if higher else '↓'} | {' | '.join(cells)} | {base} |")
    return "\n".join(lines) + "\n"


def steering_study(args: argparse.Namespace) -> Path:
    run = ensure_trained(STEERING, args)
    path = args.out / "steering.md"
    shutil.copyfile(run / "steering_table.md", path)
    shutil.copyfile(run / "steering_results.json", args.out / "steering.json")
    return path


STUDIES = {"distillation": distillation_study, "steering": steering_study, "heads": heads_study}
"""Study name -> the function that runs it and returns its table's path."""
