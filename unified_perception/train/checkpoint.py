"""Training checkpoints: what a run saves, written atomically, read back with ``weights_only=True``.

A checkpoint is a plain dict (tensors, numbers, strings, lists and dicts only, so
``torch.load(weights_only=True)`` accepts it):

* ``model``: the model's state dict; ``model_config``: :class:`ModelConfig` as a dict (enough to
  rebuild the architecture without the recipe);
* ``recipe``: the recipe as a dict; ``data_summary``: what the model was trained on;
  ``intrinsics_normalized``: ``[fx/W, fy/H, (cx+0.5)/W, (cy+0.5)/H]`` of the training data;
* ``step``, ``optimizer``, ``scheduler``, ``rng`` (for exact resume), ``metrics`` (last
  validation), ``best`` (the best validation score so far).

Files are written to a temporary name in the same folder and renamed into place, so a full disk or
an interrupted run never leaves a truncated ``latest.pt`` / ``best.pt``: the previous one survives.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from unified_perception.contract import Task
from unified_perception.train.model import UnifiedModel, build_unified_model, head_options

LATEST = "latest.pt"
BEST = "best.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model asked for."""


@dataclass(frozen=True)
class ModelConfig:
    """The architecture of a model: backbone, input size (px), tasks, head preset and overrides."""

    backbone: str = "resnet18"
    input_height: int = 96
    input_width: int = 320
    tasks: tuple[str, ...] = tuple(t.value for t in Task)
    preset: str = "light"
    head_overrides: dict[str, Any] = field(default_factory=dict)

    def build(self, seed: int | None = None) -> UnifiedModel:
        """A freshly initialised model of this architecture."""
        return build_unified_model(self.backbone, self.input_height, self.input_width,
                                   tasks=self.tasks, seed=seed, preset=self.preset,
                                   **self.head_overrides)

    def check(self) -> "ModelConfig":
        """Validate (raises ValueError naming the bad field)."""
        head_options(self.preset, **self.head_overrides)
        for name in self.tasks:
            Task(name)
        if self.input_height % 32 or self.input_width % 32:
            raise ValueError(f"model size {self.input_height}x{self.input_width}: both sides must be "
                             "multiples of 32")
        return self

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["tasks"] = list(self.tasks)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        values = dict(values)
        values["tasks"] = tuple(values.get("tasks", cls.tasks))
        return cls(**values)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file + rename in the same folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; one clear :class:`CheckpointError` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated / foreign files
        raise CheckpointError(f"checkpoint '{path}' cannot be read ({type(err).__name__}: {err}); "
                              "it may be truncated or not a torch checkpoint") from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise CheckpointError(f"checkpoint '{path}' holds no 'model' state dict")
    return payload


def model_from_checkpoint(payload: dict[str, Any], path: str | Path = "") -> UnifiedModel:
    """Rebuild the model a checkpoint describes and load its weights."""
    if "model_config" not in payload:
        raise CheckpointError(f"checkpoint '{path}' has no 'model_config'; it was not written by "
                              "`unified-perception train`")
    model = ModelConfig.from_dict(payload["model_config"]).build()
    load_model_weights(model, payload["model"], path)
    return model



def load_encoder_weights(model: UnifiedModel, path: str | Path, config: ModelConfig) -> None:
    """Load only the encoder of the checkpoint ``path`` into ``model`` (whose heads may differ from
    the checkpoint's); one :class:`CheckpointError` when the backbone or input size differs."""
    payload = load_checkpoint(path)
    saved = ModelConfig.from_dict(payload.get("model_config") or {})
    if (saved.backbone, saved.input_height, saved.input_width) != (config.backbone, config.input_height,
                                                                   config.input_width):
        raise CheckpointError(f"checkpoint '{path}' has a {saved.backbone} encoder at "
                              f"{saved.input_height}x{saved.input_width}; model.init_encoder needs "
                              f"{config.backbone} at {config.input_height}x{config.input_width}")
    prefix = "encoder."
    state = {k[len(prefix):]: v for k, v in payload["model"].items() if k.startswith(prefix)}
    try:
        model.encoder.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint '{path}': its encoder does not fit ({str(err).splitlines()[0]})") from None

def check_architecture(payload: dict[str, Any], expected: ModelConfig, path: str | Path = "", *,
                       same_size: bool = True, hint: str = "") -> None:
    """Raise one :class:`CheckpointError` when the checkpoint's ``model_config`` is another
    architecture than ``expected`` (backbone, tasks, preset, head overrides; and the input size
    when ``same_size``). A checkpoint without ``model_config`` is left to the weight loader."""
    saved = payload.get("model_config")
    if saved is None:
        return
    saved = ModelConfig.from_dict(saved)
    fields = ["backbone", "tasks", "preset", "head_overrides"]
    if same_size:
        fields += ["input_height", "input_width"]
    differ = [f for f in fields if getattr(saved, f) != getattr(expected, f)]
    if differ:
        changes = ", ".join(f"{f} {_shown(getattr(saved, f))} (wanted {_shown(getattr(expected, f))})"
                            for f in differ)
        raise CheckpointError(f"checkpoint '{path}' holds another model: {changes}"
                              + (f"; {hint}" if hint else ""))


def _shown(value: Any) -> str:
    return "[" + ", ".join(value) + "]" if isinstance(value, tuple) else repr(value)


def load_model_weights(model: UnifiedModel, state: dict[str, Any], path: str | Path = "") -> None:
    """Load a state dict, turning a mismatch into one message that counts the differing keys and
    names the first of each kind."""
    try:
        result = model.load_state_dict(state, strict=False)
        problems = []
        if result.missing_keys:
            problems.append(f"{len(result.missing_keys)} weights missing (first: "
                            f"{result.missing_keys[0]})")
        if result.unexpected_keys:
            problems.append(f"{len(result.unexpected_keys)} unexpected weights (first: "
                            f"{result.unexpected_keys[0]})")
    except RuntimeError as err:       # shapes differ
        lines = [line.strip() for line in str(err).splitlines() if "size mismatch" in line]
        problems = [f"{len(lines)} weights of another shape (first: {lines[0] if lines else err})"]
    if problems:
        raise CheckpointError(
            f"checkpoint '{path}' does not fit this model ({model.backbone_name}, tasks "
            f"{[t.value for t in model.tasks]}): {'; '.join(problems)}; use a checkpoint trained "
            "with the same backbone, preset and tasks")
