"""`unified-perception study {distillation,steering,heads}`: regenerate the tables of the paper's two
claims at small scale, and of the car's head choices, training whatever run is missing first.

* ``distillation``: the unified student trained WITH the multi-backbone teacher
  (``synthetic_student.yaml``) and WITHOUT it (``synthetic_student_no_distill.yaml``: same data,
  steps and losses), both scored frame by frame on held-out drives (the validation seed and the demo
  seed, never trained on) with the validation's metrics, every task side by side with its baseline.
* ``steering``: the steering stage's k-fold table (frozen unified encoder vs the encoder fine-tuned
  vs a frozen encoder not trained on the driving tasks), from ``synthetic_steering.yaml``.
* ``heads``: the shipped model's ``car`` heads (``synthetic_heads_car.yaml``) and the ``light``
  heads (``synthetic_heads_light.yaml``) against the paper release's
  (``synthetic_heads_paper.yaml``), all trained on the same frozen encoder (the distilled
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
HEADS_CAR = "synthetic_heads_car.yaml"
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


def runs_study(args: argparse.Namespace, name: str, recipes: dict[str, str], title: str,
               reference: str | None = None) -> Path:
    """Train (if missing) and score the runs of ``recipes`` (label -> recipe file), then
    :func:`write_study`."""
    runs = {label: ensure_trained(recipe, args) for label, recipe in recipes.items()}
    return write_study(args.out, name, scored_runs(args, runs), tuple(runs), title, reference)


def write_study(out: Path, name: str, results: dict[str, Any], labels: tuple[str, ...], title: str,
                reference: str | None = None) -> Path:
    """Write ``<name>.json`` (``results`` of :func:`scored_runs`) and ``<name>.md`` into ``out``:
    ``title`` with ``{steps}`` and ``{drives}`` filled in, then the :func:`comparison_table` of
    ``labels`` (with ``reference``, a change column for every other run against that one)."""
    (out / f"{name}.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    step_list = [str(results[label]["step"]) for label in labels]
    steps = " and ".join([", ".join(step_list[:-1]), step_list[-1]] if len(step_list) > 2 else step_list)
    drives = ", ".join(Path(b).name for b in results["held_out"])
    path = out / f"{name}.md"
    path.write_text(comparison_table(results, labels, title.format(steps=steps, drives=drives),
                                     reference=reference))
    return path


def distillation_study(args: argparse.Namespace) -> Path:
    return runs_study(
        args, "distillation", {"with teachers": WITH_TEACHERS, "without teachers": WITHOUT_TEACHERS},
        "Distillation study: the unified student with and without the multi-backbone teacher "
        "(steps {steps} of the same schedule), scored on the held-out drives {drives}.")


HEADS_LABELS = {"car heads": HEADS_CAR, "light heads": HEADS_LIGHT, "paper heads": HEADS_PAPER}
HEADS_TITLE = (
    "Head study: the shipped model's `car` heads and the `light` heads against the paper "
    "release's heads, each trained on the SAME frozen encoder (the distilled student's) with the "
    "same data, schedule and losses (best steps {steps}), scored on the held-out drives {drives}. "
    "Each 'vs paper' column is that run's change against the paper heads, relative; negative = "
    "worse. Runs of identical heads differ by a few per cent (seeded initialisation and batch "
    "order depend on the architecture): see docs/deployment.md.")


def heads_study(args: argparse.Namespace) -> Path:
    return runs_study(args, "heads", HEADS_LABELS, HEADS_TITLE, reference="paper heads")


def comparison_table(results: dict[str, Any], labels: tuple[str, ...], title: str,
                     reference: str | None = None) -> str:
    """Markdown: task | metric | each run of ``labels`` | (with ``reference``, each other run's
    relative change against it, signed so that negative is worse) | baseline; the best run in bold."""
    others = [label for label in labels if reference is not None and label != reference]
    short = {label: label.removesuffix(" heads") for label in labels}
    header = (["task", "metric", *labels] + [f"{short[o]} vs {short[reference]}" for o in others]
              + ["baseline"])
    lines = [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task, metrics in TABLE_METRICS.items():
        for key, label, higher in metrics:
            values = [results[k]["metrics"].get(task, {}).get(key) for k in labels]
            if any(v is None for v in values):
                continue
            best = max(values) if higher else min(values)
            tied = len(set(values)) == 1
            cells = [(f"**{v:.3f}**" if v == best and not tied else f"{v:.3f}") for v in values]
            for other in others:
                ours, ref = values[labels.index(other)], values[labels.index(reference)]
                gain = (ours - ref) / abs(ref) if ref else float("nan")
                cells.append(f"{(gain if higher else -gain):+.1%}")
            base = results["baseline"]["metrics"].get(task, {}).get(key)
            cells.append(f"{base:.3f}" if isinstance(base, (int, float)) else "–")
            lines.append(f"| {task} | {label} {'↑' if higher else '↓'} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def steering_study(args: argparse.Namespace) -> Path:
    run = ensure_trained(STEERING, args)
    path = args.out / "steering.md"
    shutil.copyfile(run / "steering_table.md", path)
    shutil.copyfile(run / "steering_results.json", args.out / "steering.json")
    return path


STUDIES = {"distillation": distillation_study, "steering": steering_study, "heads": heads_study}
"""Study name -> the function that runs it and returns its table's path."""
