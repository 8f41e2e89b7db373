"""`unified-perception export`: build (or load) a model and write it to ONNX under the contract."""

from __future__ import annotations

import argparse
from pathlib import Path

from unified_perception.contract import Task


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from unified_perception.train.backbones import BACKBONES
    from unified_perception.train.model import PRESETS

    parser.add_argument("--backbone", default="resnet18", choices=sorted(BACKBONES))
    parser.add_argument("--size", default="192x640", help="input HxW, multiples of 32 (192x640)")
    parser.add_argument("--out", required=True, type=Path, help="ONNX file to write")
    parser.add_argument("--checkpoint", type=Path,
                        help="trained weights: a state dict or a dict with 'model' (and optionally "
                             "'recipe', 'data_summary', 'intrinsics_normalized')")
    parser.add_argument("--imagenet-weights", type=Path,
                        help="local torchvision-layout ImageNet state dict for the backbone")
    parser.add_argument("--tasks", nargs="+", default=[t.value for t in Task],
                        choices=[t.value for t in Task], help="tasks to serve (default: all)")
    parser.add_argument("--preset", default="paper", choices=sorted(PRESETS),
                        help="head widths: 'paper' (the release) or 'light' (car)")
    parser.add_argument("--intrinsics", type=float, nargs=4, metavar=("FX_W", "FY_H", "CX_W", "CY_H"),
                        help="normalised training intrinsics written to the metadata")
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed")


def parse_size(text: str) -> tuple[int, int]:
    """'192x640' -> (192, 640); one clear error otherwise."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--size '{text}' is not HxW (e.g. 192x640)") from None
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise SystemExit(f"--size {h}x{w}: both sides must be positive multiples of 32")
    return h, w


def main(args: argparse.Namespace) -> int:
    import torch

    from unified_perception.train.backbones import load_pretrained
    from unified_perception.train.export import export_model
    from unified_perception.train.model import build_unified_model

    height, width = parse_size(args.size)
    model = build_unified_model(args.backbone, height, width, tasks=args.tasks, seed=args.seed,
                                preset=args.preset)
    recipe = data_summary = intrinsics = None
    if args.imagenet_weights:
        try:
            print(load_pretrained(model.encoder, args.imagenet_weights))
        except (FileNotFoundError, ValueError) as err:
            raise SystemExit(f"--imagenet-weights: {err}") from None
        recipe = {"status": "untrained heads", "backbone_init": f"ImageNet ({args.imagenet_weights.name})"}
    if args.checkpoint:
        if not args.checkpoint.is_file():
            raise SystemExit(f"checkpoint '{args.checkpoint}' not found")
        ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else ckpt
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise SystemExit(f"checkpoint '{args.checkpoint}' does not fit a {args.backbone} "
                             f"model with tasks {args.tasks} and preset '{args.preset}': {err}")
        recipe = ckpt.get("recipe", recipe)
        data_summary = ckpt.get("data_summary")
        intrinsics = ckpt.get("intrinsics_normalized")
    path = export_model(model, args.out, recipe=recipe, data_summary=data_summary,
                        intrinsics_normalized=args.intrinsics or intrinsics)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): {args.backbone} {height}x{width}, "
          f"tasks {', '.join(t.value for t in model.tasks)}")
    return 0
