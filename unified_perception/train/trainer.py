"""The trainer: orchestration only. Data -> window forward -> losses -> optimiser -> validation ->
checkpoints and logs. Losses live in ``train/losses``, data in ``train/data_mix`` / ``loader``,
metrics in ``eval/metrics``; this module wires them for one recipe.

One code path for one process and many: under ``torchrun`` the model is wrapped in
DistributedDataParallel, each rank draws its own share of the data, and only rank 0 validates and
writes checkpoints and logs (the others wait at a barrier). Resume restores the model, optimiser,
schedule, RNG states and the position in the data stream, so a resumed run equals an uninterrupted
one.
"""

from __future__ import annotations

import json
import math
import random
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from unified_perception.train.batch import Batch
from unified_perception.train.checkpoint import (BEST, LATEST, ModelConfig, check_architecture,
                                                 load_checkpoint, load_encoder_weights,
                                                 load_model_weights, save_checkpoint)
from unified_perception.train.distributed import (DistributedContext, barrier, broadcast_flag,
                                                  gather_digests, init_distributed, state_digest)
from unified_perception.train.model import UnifiedModel
from unified_perception.train.multi_backbone_teacher import TEACHER_GROUPS
from unified_perception.train.optim import build_optimizer, build_scheduler
from unified_perception.train.recipe import Recipe
from unified_perception.train.window_forward import WindowOutput, window_forward


SCORED_TASKS = ("depth", "semantic", "panoptic", "motion", "scene_flow", "odometry")
"""Task groups whose validation error ratios pick best.pt. Steering is left out: perception
recipes do not train its head (the steering stage does, on the frozen encoder)."""


class TrainingError(RuntimeError):
    """A run that cannot start or continue; the message says what to do."""


class WindowModel(nn.Module):
    """``forward(images, offsets) -> WindowOutput`` around a model, so DistributedDataParallel sees
    the whole window pass as one forward call."""

    def __init__(self, model: UnifiedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, offsets: tuple[int, ...]) -> WindowOutput:
        return window_forward(self.model, images, offsets)


@dataclass
class StepResult:
    step: int
    total: float
    terms: dict[str, float]
    lr: float
    seconds: float


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states in a weights_only-loadable form."""
    np_state = np.random.get_state()
    return {"python": json.dumps(random.getstate()),
            "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                      "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
            "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["gauss"]))
    torch.set_rng_state(state["torch"])


def intrinsics_normalized(batch: Batch) -> list[float]:
    """``[fx/W, fy/H, (cx+0.5)/W, (cy+0.5)/H]`` of the batch's first sample (contract metadata)."""
    h, w = batch.size
    K = batch.K[0].double()
    return [float(K[0, 0] / w), float(K[1, 1] / h), float((K[0, 2] + 0.5) / w),
            float((K[1, 2] + 0.5) / h)]


class Trainer:
    """Runs one ``perception`` recipe into ``out_dir`` (see the module docstring)."""

    def __init__(self, recipe: Recipe, out_dir: Path, *, resume: bool = False,
                 progress: bool = True, ctx: DistributedContext | None = None,
                 max_steps: int | None = None) -> None:
        self.recipe, self.out_dir, self.progress = recipe, Path(out_dir), progress
        self.ctx = ctx or init_distributed()
        self.steps = recipe.optim.steps if max_steps is None else min(max_steps, recipe.optim.steps)
        self._stop_requested = False
        seed_everything(recipe.seed + self.ctx.rank)
        self.model_config: ModelConfig = recipe.model.model_config()
        self.model = self._build_model().to(self.ctx.device)
        self.teacher = self._build_teacher()
        from unified_perception.train.losses import LossWeights, build_balancer
        from unified_perception.train.schema import parse_dataclass
        self.loss_weights = parse_dataclass(LossWeights, recipe.losses, "losses")
        self.balancer = build_balancer(recipe.balancing, self.loss_weights).to(self.ctx.device)
        self.window_model: nn.Module = WindowModel(self.model)
        if self.ctx.enabled:
            self.window_model = nn.parallel.DistributedDataParallel(
                self.window_model, device_ids=[self.ctx.device.index] if self.ctx.device.type == "cuda"
                else None, find_unused_parameters=True)
        self.optimizer = build_optimizer(self.model, recipe.optim, self.balancer.parameters())
        self.scheduler = build_scheduler(self.optimizer, recipe.optim)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self._amp_dtype() == torch.float16)
        self.step, self.best = 0, math.inf
        self.loader = self._build_data()
        self._balance_classes()
        self.validator = self._build_validator() if self.ctx.is_main else None
        self.writer = self._build_writer() if self.ctx.is_main else None
        self.intrinsics: list[float] | None = None
        if resume:
            self._resume()

    # -- set-up -----------------------------------------------------------------------------------

    def _build_model(self) -> UnifiedModel:
        model = self.model_config.build(seed=self.recipe.seed)
        section = self.recipe.model
        self.backbone_init = "random"
        weights = section.imagenet_weights
        if weights is not None and not weights.is_file() and section.imagenet_weights_optional:
            self._log(f"model.imagenet_weights: {weights} not found; the backbone starts from "
                      "random weights (imagenet_weights_optional)")
        elif weights is not None:
            from unified_perception.train.backbones import load_pretrained
            try:
                report = load_pretrained(model.encoder, weights)
            except (FileNotFoundError, ValueError) as err:
                raise TrainingError(f"model.imagenet_weights: {err}") from None
            self.backbone_init = f"ImageNet ({weights.name})"
            self._log(str(report))
        if section.init_checkpoint is not None:
            payload = load_checkpoint(section.init_checkpoint)
            check_architecture(payload, self.model_config, section.init_checkpoint, same_size=False,
                               hint="model.init_checkpoint must be a model of the recipe's "
                                    "backbone, preset and tasks")
            load_model_weights(model, payload["model"], section.init_checkpoint)
            self.backbone_init = f"checkpoint ({section.init_checkpoint})"
        if section.init_encoder is not None:
            load_encoder_weights(model, section.init_encoder, self.model_config)
            self.backbone_init = f"encoder of checkpoint ({section.init_encoder})"
        if section.freeze_encoder:
            for param in model.encoder.parameters():
                param.requires_grad_(False)
        return model

    def _build_teacher(self) -> nn.Module | None:
        if not self.recipe.teachers:
            return None
        from unified_perception.train.teachers import load_teacher
        teacher = load_teacher(self.recipe.teachers).to(self.ctx.device)
        for name, member in teacher.teacher.members.items():
            self._check_teacher_tasks(name, member)
            if (member.input_height, member.input_width) != (self.model.input_height,
                                                             self.model.input_width):
                raise TrainingError(
                    f"teacher '{name}' was trained at {member.input_height}x{member.input_width}, the "
                    f"student runs at {self.model.input_height}x{self.model.input_width}; train the "
                    "teachers at the student's size")
        return teacher

    def _check_teacher_tasks(self, name: str, member: UnifiedModel) -> None:
        """A teacher must serve some of the student's tasks, and a member named after a teacher
        group (``depth``, ``segmentation``, ``motion``) must serve that group."""
        tasks = {t.value for t in member.tasks}
        path = self.recipe.teachers[name]
        group = {t.value for t in TEACHER_GROUPS.get(name, ())}
        if group and not group <= tasks:
            raise TrainingError(f"teachers.{name}: '{path}' is a model of tasks {sorted(tasks)}, not "
                                f"a {name} teacher ({sorted(group)}); point it at the {name} "
                                "teacher's checkpoint")
        if not tasks & set(self.model_config.tasks):
            raise TrainingError(f"teachers.{name}: '{path}' serves tasks {sorted(tasks)}, none of "
                                f"the student's {list(self.model_config.tasks)}; remove it or give "
                                "a teacher of the student's tasks")

    def _build_data(self) -> Any:
        from unified_perception.train.data_plan import render_recipe_bags, training_data
        if self.ctx.is_main:
            render_recipe_bags(self.recipe)
        barrier(self.ctx)  # rank 0 renders missing synthetic bags first
        data = training_data(self.recipe, self.model_config)
        loader = data.loader(batch_size=self.recipe.optim.batch_size, seed=self.recipe.seed,
                             rank=self.ctx.rank, world_size=self.ctx.world_size,
                             pin_memory=self.ctx.device.type == "cuda")
        self.data_summary = data.summary
        self.train_dataset = data.dataset
        self.val_datasets = data.val_datasets
        return loader

    def _balance_classes(self) -> None:
        """Fill ``semantic_class_weights`` from the training data's class frequencies when the
        recipe asks for class balancing and gives no weights (the same on every rank)."""
        import dataclasses

        from unified_perception.contract import CLASSES
        from unified_perception.train.class_balance import (balanced_class_weights,
                                                            class_frequencies)
        lw = self.loss_weights
        if lw.semantic_class_balance <= 0 or lw.semantic_class_weights is not None:
            return
        freq = class_frequencies(self.train_dataset)
        weights = balanced_class_weights(freq, lw.semantic_class_balance)
        self.loss_weights = dataclasses.replace(
            lw, semantic_class_weights=tuple(round(float(w), 4) for w in weights))
        self._log("semantic class weights (pixel frequency ^ -%g): %s" % (
            lw.semantic_class_balance, ", ".join(f"{CLASSES[c].name} {w:.2f}"
                                                 for c, w in enumerate(weights) if freq[c] > 0)))

    def _build_validator(self):
        if not self.val_datasets:
            return None
        from unified_perception.train.validation import Validator
        return Validator(self.val_datasets, self.recipe.validation.max_frames)

    def _build_writer(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is in the train extra; logs still go to metrics.jsonl
            return None
        return SummaryWriter(log_dir=str(self.out_dir / "tensorboard"))

    def _amp_dtype(self) -> torch.dtype | None:
        if not (self.recipe.optim.amp and self.ctx.device.type == "cuda"):
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    # -- checkpoints ------------------------------------------------------------------------------

    def checkpoint_payload(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "model_config": self.model_config.to_dict(),
                "recipe": self.recipe.to_dict(), "data_summary": self.data_summary,
                "intrinsics_normalized": self.intrinsics, "step": self.step,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "balancer": self.balancer.state_dict(), "scaler": self.scaler.state_dict(),
                "rng": rng_state(), "best": self.best, "backbone_init": self.backbone_init}

    def save(self, name: str) -> Path | None:
        """Write ``name`` (rank 0). A failed write (disk full) keeps the previous file and stops
        the run with a message instead of losing the work."""
        if not self.ctx.is_main:
            return None
        path = self.out_dir / name
        try:
            return save_checkpoint(path, self.checkpoint_payload())
        except OSError as err:
            raise TrainingError(f"could not write {path} ({err}); the previous {name} is intact. "
                                "Free disk space and rerun with --resume") from None

    def _resume(self) -> None:
        path = self.out_dir / LATEST
        if not path.is_file():
            raise TrainingError(f"--resume: no {LATEST} in {self.out_dir}; start without --resume")
        payload = load_checkpoint(path)
        check_architecture(payload, self.model_config, path, hint="use another --out")
        load_model_weights(self.model, payload["model"], path)
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.balancer.load_state_dict(payload["balancer"])
        self.scaler.load_state_dict(payload["scaler"])
        self.step, self.best = int(payload["step"]), float(payload["best"])
        self.intrinsics = payload.get("intrinsics_normalized")
        set_rng_state(payload["rng"])
        self._log(f"resumed from {path} at step {self.step}")

    # -- the loop ---------------------------------------------------------------------------------

    def batches(self) -> Iterator[Batch]:
        """The data stream from the current step on: epoch by epoch, each sampler seeded by its
        epoch, skipping the batches already consumed (exact resume)."""
        per_epoch = len(self.loader)
        if per_epoch == 0:
            raise TrainingError("the training data yields no batch; add data or lower batch_size")
        epoch, skip = divmod(self.step, per_epoch)
        while True:
            sampler = getattr(self.loader, "sampler", None)
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
            if skip and hasattr(sampler, "set_start"):
                sampler.set_start(skip * self.loader.batch_size)
                skip = 0
            for batch in self.loader:
                if skip:
                    skip -= 1
                    continue
                yield batch
            if hasattr(sampler, "set_start"):
                sampler.set_start(0)
            epoch += 1

    def train_step(self, batch: Batch) -> StepResult:
        from unified_perception.train.losses import compute_losses
        start = time.perf_counter()
        batch = batch.to(self.ctx.device, non_blocking=True)
        if self.intrinsics is None:
            self.intrinsics = intrinsics_normalized(batch)
        self.model.train()
        if self.recipe.model.freeze_encoder:
            self.model.encoder.eval()          # its batch-norm statistics stay as loaded
        amp = self._amp_dtype()
        autocast = torch.autocast("cuda", dtype=amp) if amp else nullcontext()
        with autocast:
            output = self.window_model(batch.network_images, batch.offsets)
            teacher = None if self.teacher is None else self.teacher(batch.network_images,
                                                                     batch.offsets)
            terms = compute_losses(batch, output, self.loss_weights, self.step, teacher=teacher,
                                   depth_range_m=self.model.options.depth_range_m)
            total, weighted = self.balancer(terms)
        if not torch.isfinite(total):
            raise TrainingError(f"the loss is not finite at step {self.step} "
                                f"({ {k: float(v) for k, v in weighted.items()} }); lower optim.lr")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)
        if self.recipe.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        self.step += 1
        return StepResult(self.step, float(total.detach()),
                          {k: float(v.detach()) for k, v in weighted.items()}, lr,
                          time.perf_counter() - start)

    def validate(self) -> dict[str, Any] | None:
        """Rank 0 scores the model on the held-out sequences; saves best.pt on improvement."""
        result = None
        if self.ctx.is_main and self.validator is not None:
            res = self.validator.run(self.model, self.ctx.device, SCORED_TASKS)
            result = {"step": self.step, "score": res.score, "model": res.model,
                      "baseline": res.baseline, "relative": res.relative}
            self._write_scalars(res.flat_scalars())
            self._append_json("validation.jsonl", result)
            if res.score < self.best:
                self.best = res.score
                self.save(BEST)
            self._log(f"step {self.step}: validation score {res.score:.3f} (geometric mean of error / "
                      f"baseline; best {self.best:.3f}) " + ", ".join(f"{k} {v:.2f}"
                                                                     for k, v in res.relative.items()))
        barrier(self.ctx)
        return result

    def run(self) -> Path:
        """Train to the recipe's step count; returns the checkpoint folder."""
        if self.ctx.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "recipe.json").write_text(json.dumps(self.recipe.to_dict(), indent=2))
        previous = self._install_signal_handlers()
        bar = self._progress_bar()
        log = self.recipe.log
        try:
            stream = self.batches()
            while self.step < self.steps:
                result = self.train_step(next(stream))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{result.total:.3f}", lr=f"{result.lr:.1e}")
                if self.ctx.is_main and (result.step % log.every == 0 or result.step == 1):
                    self._write_scalars({"train/total": result.total, "train/lr": result.lr,
                                         "train/step_s": result.seconds,
                                         **{f"train/{k}": v for k, v in result.terms.items()}})
                    self._append_json("train.jsonl", {"step": result.step, "total": result.total,
                                                      "lr": result.lr, "seconds": result.seconds,
                                                      "terms": result.terms})
                if self.ctx.is_main and log.images_every and result.step % log.images_every == 0:
                    self._write_previews()
                if result.step % self.recipe.validation.every == 0 or result.step == self.steps:
                    self.validate()
                if result.step % log.checkpoint_every == 0 or result.step == self.steps:
                    self.save(LATEST)
                if broadcast_flag(self.ctx, self._stop_requested):
                    self.save(LATEST)
                    raise TrainingError(f"interrupted at step {self.step}; {LATEST} saved, continue "
                                        "with --resume")
        finally:
            if bar is not None:
                bar.close()
            self._restore_signal_handlers(previous)
            if self.writer is not None:
                self.writer.flush()
        self.check_replicas()
        return self.out_dir

    def check_replicas(self) -> None:
        """Under DDP: compare every rank's parameter digest (they must be equal after
        synchronised steps); rank 0 writes them to ``replicas.json``. A difference is an error."""
        if not self.ctx.enabled:
            return
        digests = gather_digests(self.ctx, state_digest(self.model.named_parameters()))
        if self.ctx.is_main:
            (self.out_dir / "replicas.json").write_text(json.dumps(
                {"step": self.step, "world_size": self.ctx.world_size,
                 "parameter_sha256": digests}, indent=2))
        if len(set(digests)) > 1:
            raise TrainingError(f"the ranks' weights differ after step {self.step} "
                                f"({self.out_dir / 'replicas.json'}); do not use this run")

    # -- logging ----------------------------------------------------------------------------------

    def _progress_bar(self):
        if not (self.progress and self.ctx.is_main):
            return None
        from tqdm import tqdm
        return tqdm(total=self.steps, initial=self.step, desc=f"train {self.recipe.name}",
                    unit="step", dynamic_ncols=True)

    def _write_scalars(self, scalars: dict[str, float]) -> None:
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(key, value, self.step)

    def _append_json(self, name: str, record: dict[str, Any]) -> None:
        with open(self.out_dir / name, "a") as handle:
            handle.write(json.dumps(record, default=float) + "\n")

    def _write_previews(self) -> None:
        """Depth, semantic and motion of the first validation frame pair as TensorBoard images."""
        if self.writer is None or self.validator is None:
            return
        from unified_perception.train.previews import preview_images
        for tag, image in preview_images(self.model, self.validator.sequences[0][:2],
                                         self.ctx.device).items():
            self.writer.add_image(f"preview/{tag}", image, self.step, dataformats="HWC")

    def _log(self, text: str) -> None:
        if self.ctx.is_main:
            print(text, file=sys.stderr, flush=True)

    # -- interruption -----------------------------------------------------------------------------

    def _install_signal_handlers(self) -> dict[int, Any]:
        def request_stop(signum, frame):  # noqa: ARG001
            self._stop_requested = True
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[sig] = signal.signal(sig, request_stop)
            except ValueError:  # not the main thread
                pass
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

