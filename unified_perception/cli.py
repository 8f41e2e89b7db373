"""The `unified-perception` command: one entry point, one subcommand per job.

Each subcommand lives in the part that owns it, in a module exposing
``add_arguments(parser: argparse.ArgumentParser) -> None`` and ``main(args: argparse.Namespace) -> int``.
Modules are imported only when their subcommand runs, so ``--help`` and the runtime-only commands
work on a car without torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from unified_perception import __version__

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("unified_perception.eval.demo_command",
             "the main job: a held-out synthetic drive live through the node with the shipped "
             "model, scored on every task"),
    "train": ("unified_perception.train.train_command",
              "train a model from a recipe (teachers, distilled student, steering stage, chains)"),
    "study": ("unified_perception.train.study_command",
              "regenerate the distillation and steering study tables (trains missing runs)"),
    "export": ("unified_perception.train.export_command",
               "build (or load) a model and export it to ONNX under the model contract"),
    "model-card": ("unified_perception.train.model_card",
                   "write the Markdown card of an exported model (costs, CPU latency, recipe, "
                   "data, held-out demo metrics)"),
    "quantize": ("unified_perception.deploy.quantize_command",
                 "INT8 (QDQ) version of a model, calibrated on the frames of a bag, for the CPU "
                 "and TensorRT INT8"),
    "info": ("unified_perception.runtime.info_command",
             "print a model's contract, tasks, parameter counts and GFLOPs per head"),
    "synth": ("unified_perception.sim.synth_command",
              "render synthetic driving sequences with ground truth into a ROS 2 bag"),
    "node": ("unified_perception.ros.node_main",
             "run the perception node (same as `ros2 run unified_perception perception_node`)"),
    "replay": ("unified_perception.eval.replay_command",
               "run a bag through the model (in-process, or --live through the node) into a "
               "prediction bag"),
    "evaluate": ("unified_perception.eval.evaluate_command",
                 "score a prediction bag against ground truth: metrics.json, summary, plots, montage"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unified-perception",
        description="One multi-task network per camera frame. Commands: "
                    + ", ".join(SUBCOMMANDS) + " (`unified-perception COMMAND --help`).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in SUBCOMMANDS:
        parser.parse_args(argv or ["--help"])
        return 2
    name = argv[0]
    module_name, help_text = SUBCOMMANDS[name]
    module = importlib.import_module(module_name)
    sub_parser = argparse.ArgumentParser(prog=f"unified-perception {name}", description=help_text)
    module.add_arguments(sub_parser)
    args = sub_parser.parse_args(argv[1:])
    return int(module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
