"""`unified-perception info MODEL.onnx`: what a model is, read with ONNX Runtime only (no torch)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from unified_perception.contract import (STATE_IN_PREFIX, STATE_OUT_PREFIX, ContractError,
                                         ModelMetadata, TensorInfo, normalize_dtype)
from unified_perception.runtime.int8_saturation import saturation_warning, weight_bits


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="ONNX model file")


def _shape(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _tensor_lines(title: str, tensors: list[TensorInfo]) -> list[str]:
    lines = [f"{title}:"]
    width = max((len(t.name) for t in tensors), default=0)
    lines += [f"  {t.name:<{width}}  {t.dtype:<16} {_shape(t.shape)}" for t in tensors]
    return lines


def _cost_lines(meta: ModelMetadata) -> list[str]:
    parts = [p for p in meta.head_parameters if p != "total"]
    parts += [p for p in meta.head_gflops if p not in parts and p != "total"]
    lines = [f"per head (at {meta.input_height}x{meta.input_width}, one frame):",
             f"  {'part':<12} {'parameters':>12} {'GFLOPs':>10}"]
    for part in parts + ["total"]:
        n = meta.head_parameters.get(part)
        g = meta.head_gflops.get(part)
        lines.append(f"  {part:<12} {'-' if n is None else f'{n:,}':>12} "
                     f"{'-' if g is None else f'{g:.3f}':>10}")
    return lines


def describe(path: Path) -> str:
    """A human-readable description of the model at ``path``; raises ContractError/ValueError."""
    import onnxruntime as ort

    from unified_perception.runtime.engine import check_session

    if not path.is_file():
        raise FileNotFoundError(f"model '{path}' not found")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise ValueError(f"'{path}' is not a loadable ONNX model: {err}") from None
    meta, inputs, outputs = check_session(session, str(path))
    states = [t for t in inputs if t.name.startswith(STATE_IN_PREFIX)]
    lines = [
        f"model: {path}",
        f"contract version: {meta.contract_version} (checked: OK)",
        f"producer: {meta.producer or '-'}",
        f"backbone: {meta.backbone or '-'}",
        f"tasks: {', '.join(t.value for t in meta.tasks)}",
        f"input size: {meta.input_height}x{meta.input_width} (H x W), batch dynamic",
        f"latent dim: {meta.latent_dim}; steering window: {meta.steering_window} frames; "
        f"steering units: {meta.steering_units}",
        f"depth range: [{meta.depth_min_m}, {meta.depth_max_m}] m",
        "precision: " + (f"INT8 {meta.quantization.get('format', '')} for "
                         f"{meta.quantization.get('target', '?')}, "
                         f"{weight_bits(meta.quantization)}-bit weights "
                         f"({json.dumps(meta.quantization.get('calibration', {}), sort_keys=True)})"
                         + _correction_text(meta.quantization)
                         if meta.quantization else "float32 compute"),
        *([f"warning: {warning}"] if (warning := saturation_warning(meta.quantization)) else []),
        "training intrinsics [fx/W, fy/H, (cx+.5)/W, (cy+.5)/H]: "
        + ", ".join(f"{v:.4f}" for v in meta.intrinsics_normalized),
    ]
    lines += _tensor_lines("inputs", [TensorInfo(t.name, normalize_dtype(t.dtype), t.shape)
                                      for t in inputs])
    lines += _tensor_lines("outputs", [TensorInfo(t.name, normalize_dtype(t.dtype), t.shape)
                                       for t in outputs if not t.name.startswith(STATE_OUT_PREFIX)])
    state_values = sum(int(_prod(t.shape[1:])) for t in states)
    lines.append(f"temporal state: {len(states)} tensor pairs state_in_* -> state_out_*, "
                 f"{state_values:,} values per camera; all zeros = no previous frame")
    lines.append("classes (id name rgb thing):")
    things = set(meta.thing_class_ids)
    lines += [f"  {i:>3} {name:<14} {tuple(rgb)} {'thing' if i in things else ''}".rstrip()
              for i, (name, rgb) in enumerate(zip(meta.class_names, meta.class_colors))]
    lines.append(f"training recipe: {json.dumps(meta.training_recipe, sort_keys=True)}")
    lines.append(f"data summary: {json.dumps(meta.data_summary, sort_keys=True)}")
    lines += _cost_lines(meta)
    return "\n".join(lines)


def _prod(dims) -> int:
    out = 1
    for d in dims:
        out *= int(d)
    return out


def main(args: argparse.Namespace) -> int:
    try:
        print(describe(args.model))
    except (ContractError, FileNotFoundError, ValueError) as err:
        print(f"unified-perception info: {err}", file=sys.stderr)
        return 1
    return 0


def _correction_text(quantization: dict) -> str:
    """``; pose translation x<factor>`` when quantize corrected the INT8 pose translation scale."""
    correction = quantization.get("pose_translation_correction") or {}
    return f"; pose translation x{correction['factor']:.4f}" if correction.get("applied") else ""
