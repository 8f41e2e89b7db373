"""`unified-perception quantize MODEL --calibration BAG --out MODEL_INT8 [--target cpu|tensorrt]`:
an INT8 QDQ model for ONNX Runtime's CPU provider (``cpu``, uint8 activations, 7-bit weights) or
for TensorRT INT8 (``tensorrt``, symmetric int8 activations, 8-bit weights: TensorRT builds its
engine from the file's scales, and the CPU provider runs the same file). ``--weight-bits 8`` gives
a ``cpu`` file the full weight range, for CPUs with VNNI (see ``deploy.quantize``).

Calibrated on up to ``--frames`` consecutive camera frames of the bag, prepared as the node
prepares them, with the float model's own temporal state carried from frame to frame
(:mod:`unified_perception.deploy.quantize`). The output keeps the contract metadata and adds
``quantization``; `unified-perception info` shows it, the node and replay run it like any model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

PROG = "unified-perception quantize"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="float32 ONNX model exported with `unified-perception export`")
    parser.add_argument("--calibration", type=Path, required=True,
                        help="bag folder whose camera frames calibrate the activation ranges "
                             "(frames like those the car will see; not the evaluation bag)")
    parser.add_argument("--out", type=Path, required=True, help="INT8 ONNX file to write (must not exist)")
    parser.add_argument("--frames", type=int, default=64,
                        help="consecutive frames used for calibration (default 64)")
    parser.add_argument("--target", choices=("cpu", "tensorrt"), default="cpu",
                        help="cpu: uint8 activations with zero points, fastest on ONNX Runtime's CPU "
                             "provider; tensorrt: symmetric int8 activations, the QDQ form TensorRT "
                             "builds INT8 engines from (also runs on the CPU provider, slower). "
                             "Default cpu")
    parser.add_argument("--weight-bits", type=int, choices=(7, 8), default=None,
                        help="range of the int8 weights. 7 (the cpu target's default): no int16 "
                             "saturation in the u8s8 kernels of x86 CPUs without VNNI (AVX2), the "
                             "same integers on every x86 CPU; 8: the full range, for CPUs with VNNI "
                             "or ARM (the tensorrt target's default)")
    parser.add_argument("--topics", type=Path, default=None,
                        help="topic map YAML naming the bag's camera topic (see "
                             "data/rosbag_topics_example.yaml); default: the synthetic bags' topics")


def main(args: argparse.Namespace) -> int:
    from unified_perception.deploy.quantize import QuantizeError, quantize_model

    start = time.perf_counter()
    try:
        summary = quantize_model(args.model, args.calibration, args.out, frames=args.frames,
                                 topic_map=args.topics, target=args.target,
                                 weight_bits=args.weight_bits)
    except QuantizeError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    skipped = f", {summary.undecodable} undecodable skipped" if summary.undecodable else ""
    print(f"{args.out}: INT8 QDQ for {summary.target} ({summary.weight_bits}-bit weights), calibrated on "
          f"{summary.frames} frames of {summary.image_topic} in {summary.bag}{skipped} "
          f"({time.perf_counter() - start:.0f} s)")
    if (correction := summary.translation) is not None and correction.moving_pairs:
        done = "applied" if correction.applied else f"not applied: {correction.reason}"
        print(f"pose translation scale x{correction.factor:.4f} against the float model over "
              f"{correction.moving_pairs} moving frame pairs ({done})")
    return 0
