"""Training recipes: YAML files in ``config/train/``, validated on load.

A recipe is one of five kinds:

* ``perception`` (default): train a model (the unified student, or a dedicated teacher when its
  ``model.tasks`` name one group) with the multi-task losses, optionally distilling from frozen
  ``teachers``;
* ``steering``: the steering stage on a frozen (or fine-tuned) encoder (``steering`` section);
* ``pose``: the pose decoder refit on a frozen encoder (``pose`` section; train/pose_stage.py);
* ``depth``: the depth decoder converted to ReLU on a frozen encoder (``depth`` section;
  train/depth_stage.py);
* ``chain``: run other recipes in order (``stages``), each into ``OUT/<stage name>``; a stage's
  paths may refer to an earlier stage's output as ``{out}/<stage>/best.pt``.

Every key is checked against the dataclasses below; an unknown or mistyped key names itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from unified_perception.train.checkpoint import ModelConfig
from unified_perception.train.schema import ConfigError, parse_dataclass, plain_data

RECIPE_KINDS = ("perception", "steering", "pose", "depth", "chain")


class RecipeError(ConfigError):
    """A recipe that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class ModelSection:
    """The architecture (defaults: :class:`ModelConfig`'s) and where its initial weights come from."""

    backbone: str = ModelConfig.backbone
    input_height: int = ModelConfig.input_height
    input_width: int = ModelConfig.input_width
    tasks: tuple[str, ...] = ModelConfig.tasks
    preset: str = ModelConfig.preset
    head_overrides: dict[str, Any] = field(default_factory=dict)
    imagenet_weights: Path | None = None     # local torchvision-layout state dict for the backbone
    imagenet_weights_optional: bool = False  # true: a missing imagenet_weights file means random init
    init_checkpoint: Path | None = None      # start from these weights (e.g. an earlier stage)
    init_encoder: Path | None = None         # the encoder's weights from this checkpoint (heads may differ)
    freeze_encoder: bool = False             # keep the encoder as loaded: not trained, BN statistics fixed

    def model_config(self) -> ModelConfig:
        return ModelConfig(self.backbone, self.input_height, self.input_width, self.tasks,
                           self.preset, dict(self.head_overrides)).check()


@dataclass(frozen=True)
class SyntheticSection:
    """Synthetic sequences rendered ONCE into ``root`` (skipped when the bag is already there)."""

    root: Path = Path("data/synthetic")
    train_seeds: tuple[int, ...] = (1, 2, 3, 4)
    val_seeds: tuple[int, ...] = (100,)
    frames: int = 100
    height: int = 96
    width: int = 320
    weight: float = 1.0


@dataclass(frozen=True)
class DataSection:
    """Training data: synthetic bags and/or mixer entries (``datasets``; see train/data_mix.py)."""

    synthetic: SyntheticSection | None = None
    datasets: tuple[dict[str, Any], ...] = ()
    val_datasets: tuple[dict[str, Any], ...] = ()
    frame_gaps: int = 1
    samples_per_epoch: int | None = None
    workers: int = 2
    augment: bool = True


@dataclass(frozen=True)
class OptimSection:
    """AdamW with the backbone at ``backbone_lr_scale`` x lr, linear warmup then cosine decay."""

    steps: int = 1000
    batch_size: int = 4
    lr: float = 1e-4
    backbone_lr_scale: float = 0.1
    weight_decay: float = 0.05
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    amp: bool = True                 # mixed precision, on CUDA only


@dataclass(frozen=True)
class ValidationSection:
    """Periodic validation on held-out sequences with eval/ metrics."""

    every: int = 200
    max_frames: int = 60             # per sequence; 0 = all
    metric: str = "score"            # what decides best.pt (see train/validation.py)


@dataclass(frozen=True)
class LogSection:
    every: int = 10                  # scalars every N steps
    images_every: int = 100          # image previews every N steps
    checkpoint_every: int = 100      # latest.pt every N steps


@dataclass(frozen=True)
class Recipe:
    """One training recipe (see the module docstring)."""

    name: str
    kind: str = "perception"
    seed: int = 0
    description: str = ""
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    losses: dict[str, Any] = field(default_factory=dict)
    balancing: str = "fixed"
    teachers: dict[str, Path] = field(default_factory=dict)
    validation: ValidationSection = field(default_factory=ValidationSection)
    log: LogSection = field(default_factory=LogSection)
    steering: dict[str, Any] = field(default_factory=dict)
    pose: dict[str, Any] = field(default_factory=dict)
    depth: dict[str, Any] = field(default_factory=dict)
    stages: tuple[Path, ...] = ()
    source: Path | None = None

    def __post_init__(self) -> None:
        if self.kind not in RECIPE_KINDS:
            raise ConfigError(f"kind '{self.kind}' is not one of {', '.join(RECIPE_KINDS)}")
        if self.balancing not in ("fixed", "uncertainty"):
            raise ConfigError(f"balancing '{self.balancing}' must be 'fixed' or 'uncertainty'")
        if self.kind == "chain" and not self.stages:
            raise ConfigError("a chain recipe needs 'stages': a list of recipe files")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (paths as strings), for checkpoints and the ONNX metadata."""
        from dataclasses import asdict
        return plain_data(asdict(self))


def parse_recipe(values: dict[str, Any], source: Path | None = None) -> Recipe:
    """A :class:`Recipe` from a mapping; :class:`RecipeError` names the bad key."""
    where = f"recipe '{source}'" if source else "recipe"
    try:
        recipe = parse_dataclass(Recipe, {**values, "source": source})
        _check_sections(recipe)
    except ConfigError as err:
        raise RecipeError(f"{where}: {err}") from None
    return recipe


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None,
                out_root: str | Path | None = None) -> Recipe:
    """Read and validate a recipe file; ``overrides`` are merged over its top-level sections.

    ``{out}`` in the file stands for ``out_root``: the chain's output folder, so one stage can
    name an earlier stage's checkpoint (``{out}/teacher_depth/best.pt``).
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe '{path}' not found; recipes live in config/train/")
    text = path.read_text()
    if out_root is not None:
        text = text.replace("{out}", str(out_root))
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe '{path}' is not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise RecipeError(f"recipe '{path}' must be a mapping of sections")
    if values.get("base") is not None:   # a recipe may extend another (shared data, optimiser...)
        base_path = path.parent / str(values.pop("base"))
        base = load_recipe(base_path, out_root=out_root).to_dict()
        for key in ("name", "kind", "stages", "source", "description"):
            base.pop(key, None)
        values = deep_merge(base, values)
    values = deep_merge(values, overrides or {})
    return parse_recipe(values, path)


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``; mappings merge key by key, anything else (an empty mapping too:
    ``teachers: {}`` removes the base's teachers) is replaced."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and value and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _check_sections(recipe: Recipe) -> None:
    """Validate the sections owned by other modules (losses, data sets, steering) at load time."""
    if recipe.kind == "chain":
        return
    recipe.model.model_config()
    from unified_perception.train.losses import LossWeights
    parse_dataclass(LossWeights, recipe.losses, "losses")
    if recipe.kind == "steering":
        from unified_perception.train.steering_recipe import steering_values
        from unified_perception.train.steering_stage import SteeringStageConfig
        parse_dataclass(SteeringStageConfig, steering_values(recipe, render=False), "steering")
    if recipe.kind in ("pose", "depth"):
        from unified_perception.train.refit_recipe import stage_config
        stage_config(recipe, render=False)
