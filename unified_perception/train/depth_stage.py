"""The depth refit stage: a trained depth decoder converted to ReLU activations on its FROZEN encoder.

Why: the release's depth decoder uses ELU. ONNX Runtime fuses ReLU into the convolution (in its
blocked NCHWc layout on the CPU, and into the INT8 convolution), but runs ELU as a separate
operator in plain layout, with a layout reorder on each side. At 96x320 on 2 CPU cores the six ELUs
and their reorders cost about 0.4 ms of an 11 ms unified pass (4 %), and in the INT8 model the ELUs
and their quantize / dequantize pairs about 0.5 ms of 6.5. Retraining the whole chain for that would
change every task; here only the depth decoder changes, and it is taught to give what it gave:

* every frame of the training drives is encoded ONCE (eval mode, fp16 in memory);
* the new decoder starts from the trained one's weights (the parameters are the same; ELU and ReLU
  agree on positive inputs) and trains against the trained decoder (kept frozen, in ELU) on the
  same features:

      loss = distill_weight * sum_s mean |d_s - d_s_original|       (disparity at each of the 4 scales)
             + depth_weight * mean |log z - log z_gt|               (pixels with ground truth)

* the validation drives are scored with the evaluation's depth metrics (AbsRel, RMSE, delta < 1.25)
  before and after.

The stage writes ``depth.pt`` (the checkpoint with the converted decoder and ``depth_activation``
among its head overrides, which ``export`` reads), ``depth_results.json`` and ``depth_table.md``.
Only the depth decoder's weights change; every other output of the exported model stays the same.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from unified_perception.eval.metrics.depth import DepthAccumulator
from unified_perception.train.checkpoint import ModelConfig
from unified_perception.train.frozen_encoder import encode_frames, gather_features, read_samples
from unified_perception.train.refit_loop import fit_head, load_for_refit, refit_state, write_stage
from unified_perception.train.heads.depth import DepthDecoder
from unified_perception.train.heads.layers import ACTIVATIONS
from unified_perception.train.schema import plain_data
from unified_perception.train.steering_fit import tenth_mean

FINAL_CHECKPOINT = "depth.pt"
RESULTS_JSON = "depth_results.json"
TABLE_MD = "depth_table.md"
SCORED_MAX_DEPTH_M = 80.0
"""Ground truth up to this depth is scored (the evaluation's default protocol)."""


class DepthStageError(ValueError):
    """Input the depth stage cannot use (a missing bag, no depth ground truth, no depth decoder)."""


@dataclass(frozen=True)
class DepthStageConfig:
    """The ``depth:`` section of a ``kind: depth`` recipe (see the module docstring).

    ``checkpoint``: the unified model whose depth decoder is converted; ``sequences``: bags with
    depth ground truth to train on; ``validation``: bags scored before and after (never trained
    on). ``activation``: the new decoder's (``relu``). ``steps``, ``batch_size`` (frames), ``lr``,
    ``weight_decay``: AdamW on the decoder with a one-cycle schedule.
    """

    checkpoint: Path
    sequences: tuple[Path, ...] = ()
    validation: tuple[Path, ...] = ()
    activation: str = "relu"
    steps: int = 2000
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 0.0
    distill_weight: float = 10.0
    depth_weight: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        set_("checkpoint", Path(self.checkpoint))
        set_("sequences", tuple(Path(p) for p in self.sequences))
        set_("validation", tuple(Path(p) for p in self.validation))
        if not self.sequences:
            raise ValueError("'sequences' is empty: give bags with depth ground truth")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"'activation' must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        for name in ("steps", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"'{name}' must be an integer of at least 1, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"'lr' must be positive, got {self.lr!r}")
        for name in ("weight_decay", "distill_weight", "depth_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"'{name}' must be >= 0, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return plain_data(dataclasses.asdict(self))


@dataclass
class EncodedDepth:
    """Encoded frames and their ground truth: ``features`` per encoder level ``[F, C, h, w]``
    fp16; ``depth_m`` ``[F, H, W]`` float32 (m, 0 = no value)."""

    features: list[Tensor]
    depth_m: Tensor


@dataclass(frozen=True)
class DepthScore:
    """Depth metrics over validation frames (the evaluation's: mean over images, ground truth up
    to 80 m) and ``disparity_gap``: mean |disparity - the original decoder's| at the input size."""

    frames: int
    abs_rel: float
    rmse_m: float
    a1: float
    disparity_gap: float


@dataclass(frozen=True)
class DepthStageResult:
    original: DepthScore | None
    converted_before: DepthScore | None
    converted: DepthScore | None
    train_frames: int
    loss_start: float
    loss_end: float
    seconds: float
    final_checkpoint: Path
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return plain_data(dataclasses.asdict(self))

    def table(self) -> str:
        activation = self.config.get("activation")
        lines = [f"Depth decoder converted to {activation} on the frozen encoder: "
                 f"{self.train_frames} training frames, {self.config.get('steps')} steps.", "",
                 "| decoder | frames | AbsRel | RMSE (m) | delta < 1.25 | disparity gap |",
                 "|---|---|---|---|---|---|"]
        for name, s in (("original (elu)", self.original),
                        (f"{activation}, trained weights as they were", self.converted_before),
                        (f"{activation}, refit", self.converted)):
            if s is not None:
                lines.append(f"| {name} | {s.frames} | {s.abs_rel:.4f} | {s.rmse_m:.3f} | {s.a1:.4f} | "
                             f"{s.disparity_gap:.4f} |")
        return "\n".join(lines) + "\n"


def read_depth_drive(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``[F, H, W, 3]`` uint8 frames and ``[F, H, W]`` float32 depth (m) of a bag at ``size``."""
    samples = read_samples(path, size, DepthStageError)
    if not samples or any(s.depth_m is None for s in samples):
        raise DepthStageError(f"bag '{path}' has frames without depth ground truth; the depth "
                              f"stage needs a depth topic")
    return np.stack([s.images[0] for s in samples]), np.stack([s.depth_m for s in samples])


def encode_drives(model, paths: tuple[Path, ...], size: tuple[int, int], progress: bool,
                  desc: str) -> EncodedDepth:
    """Every frame of the drives ``paths`` encoded, with its depth ground truth."""
    features, depth = [], []
    for path in tqdm(paths, desc=desc, disable=not progress):
        images, depth_m = read_depth_drive(path, size)
        features.append(encode_frames(model, images))
        depth.append(torch.from_numpy(depth_m.astype(np.float32)))
    return EncodedDepth([torch.cat(level) for level in zip(*features)], torch.cat(depth))


def converted_decoder(new_config: ModelConfig, original: DepthDecoder) -> DepthDecoder:
    """The depth decoder of ``new_config``'s architecture (its activation) holding ``original``'s
    weights, on ``original``'s device."""
    decoder = new_config.build(seed=0).depth
    decoder.load_state_dict(original.state_dict())
    return decoder.to(next(original.parameters()).device)


def depth_loss(disparities: tuple[Tensor, ...], depth_m: Tensor, original: tuple[Tensor, ...],
               gt_m: Tensor, config: DepthStageConfig, max_depth_m: float) -> Tensor:
    """The module docstring's loss: ``disparities`` / ``original`` finest first ``[B, 1, h, w]``,
    ``depth_m`` and ``gt_m`` ``[B, H, W]`` (m; ground truth 0 = none)."""
    distill = sum((d - o).abs().mean() for d, o in zip(disparities, original))
    valid = (gt_m > 0) & (gt_m <= max_depth_m)
    supervised = ((torch.log(depth_m[valid]) - torch.log(gt_m[valid])).abs().mean() if valid.any()
                  else depth_m.new_zeros(()))
    return config.distill_weight * distill + config.depth_weight * supervised


@torch.no_grad()
def score(decoder: DepthDecoder, original: DepthDecoder, data: EncodedDepth, chunk: int = 32) -> DepthScore:
    """:class:`DepthScore` of ``decoder`` (eval mode) over ``data``."""
    was_training = decoder.training
    decoder.eval()
    device = next(decoder.parameters()).device
    accumulator = DepthAccumulator(max_depth_m=SCORED_MAX_DEPTH_M)
    gaps = []
    try:
        for start in range(0, len(data.depth_m), chunk):
            index = torch.arange(start, min(start + chunk, len(data.depth_m)))
            feats = gather_features(data.features, index, device)
            out = decoder(feats, all_scales=False)
            reference = out if decoder is original else original(feats, all_scales=False)
            accumulator.update(out.depth_m[:, 0].cpu().numpy(), data.depth_m[index].numpy())
            gaps.append((out.disparities[0] - reference.disparities[0]).abs().mean(dim=(1, 2, 3)).cpu())
    finally:
        decoder.train(was_training)
    metrics = accumulator.result()
    return DepthScore(frames=len(data.depth_m), abs_rel=metrics["abs_rel"], rmse_m=metrics["rmse"],
                      a1=metrics["a1"], disparity_gap=float(torch.cat(gaps).mean()))


def fit(decoder: DepthDecoder, original: DepthDecoder, data: EncodedDepth, config: DepthStageConfig,
        progress: bool) -> list[float]:
    """Train ``decoder`` towards ``original`` (frozen) and the ground truth; returns the losses."""
    device = next(decoder.parameters()).device
    original.eval()

    def batch_loss(index: Tensor) -> Tensor:
        feats = gather_features(data.features, index, device)
        with torch.no_grad():
            target = original(feats, all_scales=True).disparities
        out = decoder(feats, all_scales=True)
        return depth_loss(out.disparities, out.depth_m[:, 0], target, data.depth_m[index].to(device),
                          config, SCORED_MAX_DEPTH_M)

    return fit_head(decoder, batch_loss, samples=len(data.depth_m), steps=config.steps,
                    batch_size=config.batch_size, lr=config.lr, weight_decay=config.weight_decay,
                    seed=config.seed, desc=f"depth refit ({config.activation})", progress=progress)


def run_depth_stage(config: DepthStageConfig, out_dir: Path, progress: bool = True) -> DepthStageResult:
    """Convert the checkpoint's depth decoder; write ``depth.pt``, ``depth_results.json`` and
    ``depth_table.md`` into ``out_dir``."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    payload, model, model_config, size = load_for_refit(config.checkpoint, "depth", "depth decoder",
                                                        DepthStageError, config.seed)
    original = model.depth.eval()
    for p in original.parameters():
        p.requires_grad_(False)
    new_config = dataclasses.replace(
        model_config, head_overrides={**model_config.head_overrides, "depth_activation": config.activation})
    decoder = converted_decoder(new_config, original)
    validation = (encode_drives(model, config.validation, size, progress, "encode validation")
                  if config.validation else None)
    scores = {}
    if validation is not None:
        scores["original"] = score(original, original, validation)
        scores["converted_before"] = score(decoder, original, validation)
    train = encode_drives(model, config.sequences, size, progress, "encode drives")
    losses = fit(decoder, original, train, config, progress)
    if validation is not None:
        scores["converted"] = score(decoder, original, validation)
    state = refit_state(payload, "depth", decoder, new_config, FINAL_CHECKPOINT)
    result = DepthStageResult(
        original=scores.get("original"), converted_before=scores.get("converted_before"),
        converted=scores.get("converted"), train_frames=len(train.depth_m),
        loss_start=tenth_mean(losses, last=False), loss_end=tenth_mean(losses, last=True),
        seconds=time.perf_counter() - started, final_checkpoint=out_dir / FINAL_CHECKPOINT,
        config=config.to_dict())
    write_stage(out_dir, FINAL_CHECKPOINT, {**payload, "model": state, "model_config": new_config.to_dict(),
                                            "depth_stage": result.to_dict()},
                RESULTS_JSON, result.to_dict(), TABLE_MD, result.table())
    return result
