"""The steering stage: the attention-pool steering head trained on the FROZEN unified encoder, the
paper's two comparisons, k-fold cross-testing over sequences, and an optional final fit.

Modes (each k-fold cross-tested on the same folds):

* ``frozen``: the unified checkpoint's encoder, frozen. Its pooled features are computed once per
  sequence and cached (:mod:`steering_cache`); only ``model.latent`` (the projection, which the
  perception losses never reach) and ``model.steering`` train, so this mode takes minutes.
* ``finetune``: the same head with the checkpoint's encoder trained end to end on image windows
  (``finetune_*`` settings: steps, encoder rate, batch and an optionally shorter window).
* ``untrained``: a frozen encoder NOT trained on the driving tasks: ImageNet weights from a local
  torchvision-layout file when ``imagenet_weights`` is given, else random initialisation (the
  result says which).

Each fold trains a fresh copy of the same initial head (the projection standardised on the
training frames' features, the output starting at the training folds' mean angle) and is tested on
its held-out sequences; the mean-angle baseline is scored on the same folds. ``final_fit`` trains a frozen-mode head on ALL sequences and writes it into a copy of the
checkpoint (``steering.pt``), which ``export --checkpoint`` turns into a model with a trained head.
Writes ``steering_results.json`` and ``steering_table.md`` into the output folder.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from unified_perception.contract import Task
from unified_perception.train.backbones import load_pretrained
from unified_perception.train.checkpoint import (ModelConfig, load_checkpoint, load_model_weights,
                                                 model_from_checkpoint, save_checkpoint)
from unified_perception.train.heads.steering import (EGO_MOTION_DIMS, AttentionPoolSteering,
                                                    FrameLatent)
from unified_perception.train.model import UnifiedModel, head_options
from unified_perception.train.schema import plain_data
from unified_perception.train.steering_cache import FeatureCache, encoder_digest, pool_features, \
    read_sequence, SequenceFrames
from unified_perception.train.steering_fit import (CachedFeatures, EncodedFeatures, FitSettings,
                                                   WindowSteering, fit, predict, start_at_mean,
                                                   standardize_projection, tenth_mean)
from unified_perception.train.steering_folds import (MeanStd, SteeringErrors, mean_angle_baseline,
                                                     split_folds, steering_errors)
from unified_perception.train.steering_windows import WindowSet, build_windows

MODES = ("frozen", "finetune", "untrained")
RESULTS_JSON = "steering_results.json"
TABLE_MD = "steering_table.md"
FINAL_CHECKPOINT = "steering.pt"
CACHE_DIR = "steering_cache"


class SteeringStageError(ValueError):
    """Input the stage cannot use (a missing sequence, a checkpoint without a model config)."""


@dataclass(frozen=True)
class SteeringStageConfig:
    """What the steering stage trains and how (the ``steering:`` section of a recipe).

    ``checkpoint``: the unified model (``unified-perception train`` checkpoint); None only for an
    ``untrained``-only run, which then uses the default :class:`ModelConfig` architecture.
    ``sequences``: bags with steering ground truth (at least ``folds`` of them). ``window``: slots
    of the steering head (None = the model's); ``stride``: recorded frames between window slots.
    ``steps``/``batch_size``/``lr``/``weight_decay``: AdamW on the head (frozen and untrained modes,
    and the final fit). ``finetune_steps``/``finetune_batch_size``/``finetune_lr`` (encoder rate;
    the head keeps ``lr``)/``finetune_window`` (fill only the newest slots; None = ``window``):
    the end-to-end mode. ``imagenet_weights``: local torchvision state dict for ``untrained``.
    ``mirror``: every mode also trains on the training sequences mirrored left-right with the
    steering sign flipped (twice the data, and a head that cannot lean to one side); the folds
    test on the recipe's sequences as recorded. ``ego_motion``: the frame latent also takes the
    frame's ego-motion from the model's own pose decoder (frozen in every mode; the untrained
    mode's is as untrained as its encoder), and the final model is built that way.
    ``kinematic``: the head also adds the bicycle model's steering angle of the newest frame's
    ego-motion (needs ``ego_motion``; see ``AttentionPoolSteering``).
    """

    checkpoint: Path | None = None
    sequences: tuple[Path, ...] = ()
    modes: tuple[str, ...] = MODES
    folds: int = 10
    steps: int = 2000
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.01
    window: int | None = None
    stride: int = 1
    seed: int = 0
    imagenet_weights: Path | None = None
    finetune_steps: int = 300
    finetune_batch_size: int = 8
    finetune_lr: float = 1e-4
    finetune_window: int | None = None
    final_fit: bool = True
    mirror: bool = True
    ego_motion: bool = False
    kinematic: bool = False

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        set_("sequences", tuple(Path(p) for p in self.sequences))
        set_("modes", tuple(self.modes))
        set_("checkpoint", None if self.checkpoint is None else Path(self.checkpoint))
        set_("imagenet_weights", None if self.imagenet_weights is None
             else Path(self.imagenet_weights))
        self._validate()

    def _validate(self) -> None:
        bad = [m for m in self.modes if m not in MODES]
        if not self.modes or bad or len(set(self.modes)) != len(self.modes):
            raise ValueError(f"'modes' must be distinct values of {list(MODES)}, got "
                             f"{list(self.modes)}")
        if not self.sequences:
            raise ValueError("'sequences' is empty: give the bags with steering ground truth")
        for name in ("folds", "steps", "batch_size", "stride", "finetune_steps",
                     "finetune_batch_size", "window", "finetune_window"):
            value = getattr(self, name)
            least = 2 if name == "folds" else 1
            if value is not None and (not isinstance(value, int) or value < least):
                raise ValueError(f"'{name}' must be an integer of at least {least}, got {value!r}")
        if self.folds > len(self.sequences):
            raise ValueError(f"'folds' ({self.folds}) exceeds the number of sequences "
                             f"({len(self.sequences)}); every fold needs a test sequence")
        for name in ("lr", "finetune_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"'{name}' must be positive, got {getattr(self, name)!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"'weight_decay' must be >= 0, got {self.weight_decay!r}")
        if (self.window is not None and self.finetune_window is not None
                and self.finetune_window > self.window):
            raise ValueError(f"'finetune_window' ({self.finetune_window}) exceeds 'window' "
                             f"({self.window})")
        if self.kinematic and not self.ego_motion:
            raise ValueError("'kinematic' reads the pose decoder's ego-motion: set 'ego_motion' "
                             "too")
        needs = [m for m in self.modes if m != "untrained"]
        needs += ["final_fit"] if self.final_fit else []
        if self.checkpoint is None and needs:
            raise ValueError(f"'checkpoint' is required for {', '.join(needs)}: give the unified "
                             f"model's checkpoint (or run only mode 'untrained' without final_fit)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (paths as strings)."""
        return plain_data(dataclasses.asdict(self))


@dataclass(frozen=True)
class FoldResult:
    """One held-out fold: test and baseline errors, and the mean training loss (deg²) over the
    first and last tenth of the steps."""

    fold: int
    test_sequences: tuple[str, ...]
    train_windows: int
    test: SteeringErrors
    baseline: SteeringErrors
    loss_start_deg2: float
    loss_end_deg2: float


@dataclass(frozen=True)
class ModeResult:
    """A mode cross-tested over all folds. ``encoder``: what the encoder was (and its init);
    ``encoder_changed``: whether training changed encoder weights, checked bit by bit (False for
    the frozen modes, True when fine-tuning did its job)."""

    mode: str
    encoder: str
    encoder_changed: bool
    window: int
    used_slots: int
    steps: int
    folds: tuple[FoldResult, ...]
    rmse_deg: MeanStd
    mae_deg: MeanStd
    baseline_rmse_deg: MeanStd
    baseline_mae_deg: MeanStd
    seconds: float


@dataclass(frozen=True)
class SteeringStageResult:
    """Every mode's cross-test, the fold split (test sequences per fold), the final checkpoint."""

    modes: tuple[ModeResult, ...]
    fold_sequences: tuple[tuple[str, ...], ...]
    window: int
    stride: int
    final_checkpoint: Path | None = None
    final_loss_deg2: float | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def mode(self, name: str) -> ModeResult:
        return next(m for m in self.modes if m.mode == name)

    def to_dict(self) -> dict[str, Any]:
        return plain_data(dataclasses.asdict(self))

    def table(self) -> str:
        """Markdown: mode | encoder | test RMSE | test MAE | baseline RMSE | baseline MAE (deg)."""
        lines = [f"Steering, {len(self.fold_sequences)}-fold cross-testing over "
                 f"{sum(map(len, self.fold_sequences))} sequences (window {self.window}, stride "
                 f"{self.stride}"
                 + ("; training drives also mirrored left-right" if self.config.get("mirror")
                    else "")
                 + "); errors in degrees, mean ± std over folds; baseline = training folds' mean "
                 "angle.", "",
                 "| mode | encoder | test RMSE (deg) | test MAE (deg) | baseline RMSE (deg) | "
                 "baseline MAE (deg) |", "|---|---|---|---|---|---|"]
        for m in self.modes:
            lines.append(f"| {m.mode} | {m.encoder} | {m.rmse_deg} | {m.mae_deg} | "
                         f"{m.baseline_rmse_deg} | {m.baseline_mae_deg} |")
        return "\n".join(lines) + "\n"


@dataclass
class _ModeData:
    """What a mode trains on: the features of every frame and the windows over them."""

    features: Callable[[nn.Module], CachedFeatures | EncodedFeatures]   # encoder -> source
    windows: WindowSet


class _Stage:
    """One run: the loaded checkpoint, the frame and feature caches, the fold split."""

    def __init__(self, config: SteeringStageConfig, out_dir: Path, progress: bool) -> None:
        self.config, self.out_dir, self.progress = config, out_dir, progress
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        for index, path in enumerate(config.sequences):
            if not path.exists():
                raise SteeringStageError(f"sequences[{index}] '{path}' not found; give existing "
                                         f"bag folders")
        self.payload = None if config.checkpoint is None else load_checkpoint(config.checkpoint)
        if self.payload is not None and "model_config" not in self.payload:
            raise SteeringStageError(f"checkpoint '{config.checkpoint}' has no 'model_config'; it "
                                     f"was not written by `unified-perception train`")
        self.model_config = (ModelConfig() if self.payload is None
                             else ModelConfig.from_dict(self.payload["model_config"]))
        self.size = (self.model_config.input_height, self.model_config.input_width)
        mc = self.model_config
        self.window = config.window or head_options(mc.preset, **mc.head_overrides).steering_window
        if config.finetune_window is not None and config.finetune_window > self.window:
            raise SteeringStageError(f"'finetune_window' ({config.finetune_window}) exceeds the "
                                     f"window ({self.window})")
        self.frames: Callable[[Path], SequenceFrames] = functools.cache(
            lambda path: read_sequence(path, self.size, progress))
        self.cache = FeatureCache(out_dir / CACHE_DIR)
        self.folds = split_folds(len(config.sequences), config.folds, config.seed)

    @property
    def sequence_count(self) -> int:
        """Sequences the modes train on: the recipe's, then (``mirror``) their mirror images."""
        return len(self.config.sequences) * (2 if self.config.mirror else 1)

    def sequence(self, index: int) -> SequenceFrames:
        """Sequence ``index`` of :attr:`sequence_count`: indices from ``len(sequences)`` on are the
        recipe's sequences mirrored left-right with the steering sign flipped (a left bend seen
        in a mirror is a right bend)."""
        n = len(self.config.sequences)
        frames = self.frames(self.config.sequences[index % n])
        if index < n:
            return frames
        return SequenceFrames(frames.path, np.ascontiguousarray(frames.images[:, :, ::-1]),
                              -frames.steering_rad)

    def train_sequences(self, test: Sequence[int]) -> list[int]:
        """Indices (of :meth:`sequence`) a fold trains on: every recipe sequence not in ``test``,
        and its mirror image. Folds test on the recipe's own sequences only."""
        n = len(self.config.sequences)
        train = [i for i in range(n) if i not in test]
        return train + ([i + n for i in train] if self.config.mirror else [])

    def _fresh_model(self) -> UnifiedModel:
        return self.model_config.build(seed=self.config.seed)

    def model_for(self, mode: str) -> tuple[UnifiedModel, str]:
        """The model whose encoder a mode uses, and a description of that encoder."""
        if mode == "untrained":
            model = self._fresh_model()
            if self.config.imagenet_weights is None:
                return model, f"random init (seed {self.config.seed}), frozen"
            report = load_pretrained(model.encoder, self.config.imagenet_weights)
            return model, f"ImageNet weights from {report.path} ({report.loaded} tensors), frozen"
        model = model_from_checkpoint(self.payload, self.config.checkpoint or "")
        how = "fine-tuned end to end" if mode == "finetune" else "frozen"
        return model, f"unified checkpoint {self.config.checkpoint.name}, {how}"

    def data_for(self, mode: str, model: UnifiedModel) -> _ModeData:
        """Cached pooled features (frozen encoders) or the images (fine-tuning) of all sequences."""
        model.to(self.device)
        if self.config.ego_motion and model.pose is None:
            raise SteeringStageError("'ego_motion' needs a checkpoint whose model has a pose "
                                     "decoder (a two-frame task: pose, motion or scene flow)")
        if mode == "finetune":
            sequences = [self.sequence(i) for i in range(self.sequence_count)]
            images = torch.from_numpy(np.concatenate([s.images for s in sequences]))
            windows = build_windows([s.steering_rad for s in sequences], self.window,
                                    self.config.stride, self.config.finetune_window)
            ego = (self.frozen_features(model)[0][:, -EGO_MOTION_DIMS:].cpu()
                   if self.config.ego_motion else None)    # from the frozen pose decoder
            return _ModeData(lambda encoder: EncodedFeatures(model.normalize, encoder, images,
                                                             model.latent.columns, ego), windows)
        pooled, windows = self.frozen_features(model)  # ego-motion last where it is used
        return _ModeData(lambda encoder: CachedFeatures(pooled), windows)

    def frozen_features(self, model: UnifiedModel) -> tuple[torch.Tensor, WindowSet]:
        """Pooled features (and ego-motion) of every frame of :attr:`sequence_count` sequences by
        ``model``'s frozen encoder (and pose decoder), from the cache, and the windows over them."""
        pose = model.pose if self.config.ego_motion else None
        key = (f"{encoder_digest(model.encoder)}:columns{model.latent.columns}"
               + (f":ego{encoder_digest(pose)}" if pose is not None else ""))
        encode = functools.partial(pool_features, model.normalize, model.encoder,
                                   device=self.device, columns=model.latent.columns, pose=pose)
        n = len(self.config.sequences)
        cached = [self.cache.features(self.config.sequences[i % n], self.size,
                                      key + (":mirrored" if i >= n else ""),
                                      lambda path, i=i: self.sequence(i), encode)
                  for i in range(self.sequence_count)]
        pooled = torch.from_numpy(np.concatenate([c.pooled for c in cached])).to(self.device)
        return pooled, build_windows([c.steering_rad for c in cached], self.window,
                                     self.config.stride)

    def initial_head(self, model: UnifiedModel) -> tuple[FrameLatent, AttentionPoolSteering]:
        """The model's latent projection and steering head, or a fresh seeded head where the
        model has none or one of another window."""
        steering = model.steering
        if (steering is None or steering.window != self.window
                or steering.kinematic != self.config.kinematic):
            o = model.options
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.config.seed)
                steering = AttentionPoolSteering(o.latent_dim, self.window, o.steering_heads,
                                                 o.steering_hidden, self.config.kinematic)
        latent = model.latent
        if self.config.ego_motion and not latent.ego_motion:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.config.seed)
                latent = FrameLatent(tuple(model.encoder.channels), model.options.latent_dim,
                                     latent.columns, ego_motion=True)
        return copy.deepcopy(latent).to(self.device), copy.deepcopy(steering).to(self.device)

    def settings(self, mode: str, seed: int) -> FitSettings:
        c = self.config
        if mode == "finetune":
            return FitSettings(c.finetune_steps, c.finetune_batch_size, c.lr, c.weight_decay, seed,
                               encoder_lr=c.finetune_lr)
        return FitSettings(c.steps, c.batch_size, c.lr, c.weight_decay, seed)

    def train(self, mode: str, model: UnifiedModel, data: _ModeData, windows: WindowSet,
              seed: int, desc: str) -> tuple[WindowSteering, list[float]]:
        """A fresh copy of the initial head (and of the encoder when fine-tuning) fit on windows."""
        latent, steering = self.initial_head(model)
        source = data.features(copy.deepcopy(model.encoder) if mode == "finetune"
                               else model.encoder)
        module = WindowSteering(latent, steering, source)
        standardize_projection(module, windows)
        start_at_mean(module.steering, float(np.mean(windows.target_rad)))
        losses = fit(module, windows, self.settings(mode, seed), self.device, desc, self.progress)
        return module, losses


def run_mode(stage: _Stage, mode: str) -> ModeResult:
    """Cross-test one mode over the stage's folds."""
    started = time.perf_counter()
    model, described = stage.model_for(mode)
    before = {k: v.detach().clone() for k, v in model.encoder.state_dict().items()}
    data = stage.data_for(mode, model)
    folds, changed = [], False
    for index, test in enumerate(stage.folds):
        train = stage.train_sequences(test)
        train_w, test_w = data.windows.select(train), data.windows.select(test)
        # The baseline's mean angle: the training sequences as recorded (mirrors average to 0).
        recorded = data.windows.select([i for i in train if i < len(stage.config.sequences)])
        module, losses = stage.train(mode, model, data, train_w, stage.config.seed + index,
                                     f"{mode} fold {index + 1}/{len(stage.folds)}")
        if isinstance(module.features, EncodedFeatures):
            changed |= not _same_state(before, module.features.encoder.state_dict())
        folds.append(FoldResult(
            fold=index, test_sequences=tuple(str(stage.config.sequences[i]) for i in test),
            train_windows=len(train_w),
            test=steering_errors(predict(module, test_w, stage.device), test_w.target_rad),
            baseline=mean_angle_baseline(recorded.target_rad, test_w.target_rad),
            loss_start_deg2=tenth_mean(losses, last=False),
            loss_end_deg2=tenth_mean(losses, last=True)))
    changed |= not _same_state(before, model.encoder.state_dict())
    return ModeResult(
        mode=mode, encoder=described, encoder_changed=changed, window=stage.window,
        used_slots=(stage.config.finetune_window or stage.window) if mode == "finetune"
        else stage.window,
        steps=stage.settings(mode, 0).steps, folds=tuple(folds),
        rmse_deg=MeanStd.of([f.test.rmse_deg for f in folds]),
        mae_deg=MeanStd.of([f.test.mae_deg for f in folds]),
        baseline_rmse_deg=MeanStd.of([f.baseline.rmse_deg for f in folds]),
        baseline_mae_deg=MeanStd.of([f.baseline.mae_deg for f in folds]),
        seconds=time.perf_counter() - started)


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k].to(a[k].device)) for k in a)


def final_fit(stage: _Stage) -> tuple[Path, float]:
    """A frozen-mode head trained on ALL sequences, written into a copy of the checkpoint."""
    model, _ = stage.model_for("frozen")
    data = stage.data_for("frozen", model)
    module, losses = stage.train("frozen", model, data, data.windows, stage.config.seed,
                                 "final fit (all sequences)")
    payload = dict(stage.payload)
    state = {k: v for k, v in payload["model"].items()
             if not k.startswith(("latent.", "steering."))}
    state.update({f"latent.{k}": v.cpu() for k, v in module.latent.state_dict().items()})
    state.update({f"steering.{k}": v.cpu() for k, v in module.steering.state_dict().items()})
    tasks = tuple(stage.model_config.tasks)
    config = dataclasses.replace(
        stage.model_config, tasks=tasks + (() if Task.STEERING.value in tasks
                                           else (Task.STEERING.value,)),
        head_overrides={**stage.model_config.head_overrides, "steering_window": stage.window,
                        **({"latent_ego_motion": True} if stage.config.ego_motion else {}),
                        **({"steering_kinematic": True} if stage.config.kinematic else {})})
    load_model_weights(config.build(), state, FINAL_CHECKPOINT)   # it must load before it ships
    final_loss = tenth_mean(losses, last=True)
    payload.update(model=state, model_config=config.to_dict(),
                   steering_stage={"config": stage.config.to_dict(), "final_loss_deg2": final_loss})
    return save_checkpoint(stage.out_dir / FINAL_CHECKPOINT, payload), final_loss


def run_steering_stage(config: SteeringStageConfig, out_dir: Path,
                       progress: bool = True) -> SteeringStageResult:
    """Cross-test every mode of ``config``, optionally fit the final head, and write
    ``steering_results.json`` and ``steering_table.md`` (and ``steering.pt``) into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = _Stage(config, out_dir, progress)
    modes = tuple(run_mode(stage, mode) for mode in config.modes)
    final_path, final_loss = final_fit(stage) if config.final_fit else (None, None)
    result = SteeringStageResult(
        modes=modes, window=stage.window, stride=config.stride,
        fold_sequences=tuple(tuple(str(config.sequences[i]) for i in f) for f in stage.folds),
        final_checkpoint=final_path, final_loss_deg2=final_loss, config=config.to_dict())
    (out_dir / RESULTS_JSON).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    (out_dir / TABLE_MD).write_text(result.table())
    return result
