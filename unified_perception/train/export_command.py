"""`unified-perception export`: build (or load) a model and write it to ONNX under the contract.

Without ``--checkpoint`` the flags describe a freshly initialised model (optionally with an
ImageNet backbone). With ``--checkpoint`` (a ``latest.pt`` / ``best.pt`` of
``unified-perception train``) the architecture comes from the checkpoint's ``model_config``; a
flag given as well must agree with it. The recipe, data summary and training intrinsics stored in
the checkpoint go into the ONNX metadata.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from unified_perception import image_size
from unified_perception.contract import Task

DEFAULT_BACKBONE = "resnet18"
DEFAULT_SIZE = "192x640"
DEFAULT_PRESET = "paper"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from unified_perception.train.backbones import BACKBONES
    from unified_perception.train.model import PRESETS

    parser.add_argument("--backbone", choices=sorted(BACKBONES),
                        help=f"backbone (default {DEFAULT_BACKBONE}; with --checkpoint: its own)")
    parser.add_argument("--size", help=f"input HxW, multiples of 32 (default {DEFAULT_SIZE}; with "
                                       "--checkpoint: its own)")
    parser.add_argument("--out", required=True, type=Path, help="ONNX file to write")
    parser.add_argument("--checkpoint", type=Path,
                        help="trained weights: latest.pt / best.pt of `unified-perception train` "
                             "(architecture, recipe and data summary come from it)")
    parser.add_argument("--imagenet-weights", type=Path,
                        help="local torchvision-layout ImageNet state dict for the backbone")
    parser.add_argument("--tasks", nargs="+", choices=[t.value for t in Task],
                        help="tasks to serve (default: all; with --checkpoint: its own)")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help=f"head widths: 'paper' (the release) or 'light' (car) (default "
                             f"{DEFAULT_PRESET}; with --checkpoint: its own)")
    parser.add_argument("--intrinsics", type=float, nargs=4, metavar=("FX_W", "FY_H", "CX_W", "CY_H"),
                        help="normalised training intrinsics written to the metadata")
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed")
    parser.add_argument("--weights-fp16", action="store_true",
                        help="store the weights as float16 (half the file), computed in float32: "
                             "ONNX Runtime and TensorRT cast them back when they load the model")


def size_flag(text: str) -> tuple[int, int]:
    """``--size`` as ``(height, width)``: multiples of 32 (the coarsest stride); one clear error."""
    try:
        return image_size.parse_size(text, multiple_of=32)
    except image_size.ImageSizeError as err:
        raise SystemExit(f"--size: {err}") from None


def flag_config(args: argparse.Namespace):
    """The :class:`ModelConfig` the flags describe (defaults where a flag is not given)."""
    from unified_perception.train.checkpoint import ModelConfig

    height, width = size_flag(args.size or DEFAULT_SIZE)
    return ModelConfig(args.backbone or DEFAULT_BACKBONE, height, width,
                       tuple(args.tasks or [t.value for t in Task]), args.preset or DEFAULT_PRESET)


def checkpoint_config(args: argparse.Namespace, payload: dict[str, Any]):
    """The checkpoint's :class:`ModelConfig`; a flag that disagrees with it is one clear error."""
    from unified_perception.train.checkpoint import ModelConfig

    if "model_config" not in payload:         # weights without a description: the flags say
        return flag_config(args)
    config = ModelConfig.from_dict(payload["model_config"])
    given = {"--backbone": (args.backbone, config.backbone),
             "--size": (args.size and size_flag(args.size),
                        (config.input_height, config.input_width)),
             "--tasks": (args.tasks and sorted(args.tasks), sorted(config.tasks)),
             "--preset": (args.preset, config.preset)}
    differ = [f"{flag} {value} (checkpoint: {saved})" for flag, (value, saved) in given.items()
              if value and value != saved]
    if differ:
        raise SystemExit(f"checkpoint '{args.checkpoint}' holds another model than "
                         f"{', '.join(differ)}; drop those flags (the checkpoint fixes the "
                         "architecture) or export another checkpoint")
    return config


def load_trained(args: argparse.Namespace):
    """``(model, recipe, data_summary, intrinsics)`` from ``--checkpoint`` with the trainer's loader."""
    from unified_perception.train.checkpoint import (CheckpointError, load_checkpoint,
                                                     load_model_weights)

    try:
        payload = load_checkpoint(args.checkpoint)
        config = checkpoint_config(args, payload)
        model = config.build(seed=args.seed)
        load_model_weights(model, payload["model"], args.checkpoint)
    except CheckpointError as err:
        raise SystemExit(str(err)) from None
    recipe = payload.get("recipe")
    if recipe is not None:
        recipe = {**recipe, "checkpoint": {"file": args.checkpoint.name,
                                           "step": payload.get("step"),
                                           "backbone_init": payload.get("backbone_init")}}
    return model, recipe, payload.get("data_summary"), payload.get("intrinsics_normalized")


def main(args: argparse.Namespace) -> int:
    from unified_perception.train.backbones import load_pretrained
    from unified_perception.train.export import export_model

    recipe = data_summary = intrinsics = None
    if args.checkpoint:
        if args.imagenet_weights:
            raise SystemExit("give either --checkpoint (trained weights) or --imagenet-weights "
                             "(an untrained model with an ImageNet backbone), not both")
        model, recipe, data_summary, intrinsics = load_trained(args)
    else:
        model = flag_config(args).build(seed=args.seed)
    if args.imagenet_weights:
        try:
            print(load_pretrained(model.encoder, args.imagenet_weights))
        except (FileNotFoundError, ValueError) as err:
            raise SystemExit(f"--imagenet-weights: {err}") from None
        recipe = {"status": "untrained heads", "backbone_init": f"ImageNet ({args.imagenet_weights.name})"}
    path = export_model(model, args.out, recipe=recipe, data_summary=data_summary,
                        intrinsics_normalized=args.intrinsics or intrinsics,
                        weights_fp16=args.weights_fp16)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, "
          f"{'fp16' if args.weights_fp16 else 'fp32'} weights): {model.backbone_name} "
          f"{model.input_height}x{model.input_width}, tasks {', '.join(t.value for t in model.tasks)}")
    return 0
