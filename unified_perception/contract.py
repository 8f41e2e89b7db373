"""The model I/O contract between the offline PyTorch side and the onboard ONNX Runtime side.

One source of truth for tensor names, shapes, dtypes, metadata keys, the contract version and the
class table. `train/export` writes models that follow it; `runtime/` checks a model against it before
running it. Pure Python: no torch, no rclpy, no onnxruntime.

Rules every model follows (contract version 2):

* Input ``image``: ``[N, H, W, 3] uint8`` RGB. ``H``, ``W`` are fixed per model (metadata
  ``input_height`` / ``input_width``); ``N`` is dynamic (several cameras in one call).
  Normalisation happens inside the graph.
* Temporal state: every input named ``state_in_<x>`` has an output ``state_out_<x>`` of the same
  dtype and shape. The runtime feeds ``state_out_<x>`` of frame t as ``state_in_<x>`` of frame t+1
  (per camera, i.e. per batch row). All state dimensions but ``N`` are static. The initial (or
  reset) state is all zeros; a model must treat an all-zero state as "no previous frame".
* Outputs are named by :data:`OUTPUTS`; which ones a model has follows from its task list
  (:data:`TASK_OUTPUTS`). ``latent`` is always there. A model with a two-frame task also outputs
  ``pair_valid`` (``[N] bool``): False where the state held no previous frame; the outputs of
  two-frame tasks in that row are then meaningless and must not be published.
* Metadata (ONNX ``metadata_props``, all strings, JSON for structured values) under the keys of
  :class:`MetadataKey`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping, Sequence

CONTRACT_VERSION = "2.0"
"""``major.minor``. A runtime accepts a model of the same major and a minor not newer than its own.
2.0: the ``latent`` output pools the encoder over vertical strips (1.0: one global mean), and the
``light`` heads changed shape (depth and motion predicted at stride 4, no ``prev_image`` state);
1.0 files are refused with a message to re-export them."""

STATE_IN_PREFIX = "state_in_"
STATE_OUT_PREFIX = "state_out_"


class Task(str, Enum):
    """The tasks a model may serve. Seven perception tasks plus steering."""

    DEPTH = "depth"
    SEMANTIC = "semantic"
    INSTANCE = "instance"
    PANOPTIC = "panoptic"
    MOTION = "motion"
    SCENE_FLOW = "scene_flow"
    POSE = "pose"
    STEERING = "steering"


ALL_TASKS: tuple[Task, ...] = tuple(Task)
TWO_FRAME_TASKS: frozenset[Task] = frozenset({Task.MOTION, Task.SCENE_FLOW, Task.POSE})


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor of the contract.

    ``shape`` uses symbolic dims: ``"N"`` batch, ``"H"``/``"W"`` the model input size, ``"D"`` the
    latent size; integers are fixed.
    """

    name: str
    dtype: str
    shape: tuple[str | int, ...]
    unit: str
    doc: str


IMAGE = TensorSpec("image", "uint8", ("N", "H", "W", 3), "", "RGB camera image resized to the model size")

DEPTH = TensorSpec(
    "depth", "float32", ("N", 1, "H", "W"), "m",
    "metric depth along the optical z axis (REP 118), clamped to [depth_min_m, depth_max_m]")
SEMANTIC = TensorSpec("semantic", "uint8", ("N", "H", "W"), "", "class id per pixel (CLASSES index)")
INSTANCES = TensorSpec(
    "instances", "int32", ("N", "H", "W"), "", "instance id per pixel, 0 = no instance (stuff)")
PANOPTIC = TensorSpec(
    "panoptic", "int32", ("N", "H", "W"), "",
    "class * PANOPTIC_LABEL_DIVISOR + instance (Cityscapes convention; stuff has instance 0)")
MOTION_PROB = TensorSpec(
    "motion_prob", "float32", ("N", 1, "H", "W"), "", "probability that the pixel moves independently")
SCENE_FLOW = TensorSpec(
    "scene_flow", "float32", ("N", 3, "H", "W"), "m",
    "independent 3D motion of each pixel's point between t-1 and t, camera optical frame of t")
EGO_MOTION = TensorSpec(
    "ego_motion", "float32", ("N", 4, 4), "m",
    "T_cam_prev_cam_cur: maps points from the optical frame of t into that of t-1 "
    "(the pose of camera t expressed in camera t-1)")
STEERING = TensorSpec("steering", "float32", ("N", 1), "rad", "steering angle, positive = left")
LATENT = TensorSpec("latent", "float32", ("N", "D"), "", "the frame latent (pooled encoder features)")
PAIR_VALID = TensorSpec(
    "pair_valid", "bool", ("N",), "", "False where no previous frame was in the state")

INPUTS: tuple[TensorSpec, ...] = (IMAGE,)
OUTPUTS: tuple[TensorSpec, ...] = (
    DEPTH, SEMANTIC, INSTANCES, PANOPTIC, MOTION_PROB, SCENE_FLOW, EGO_MOTION, STEERING, LATENT,
    PAIR_VALID)
OUTPUT_BY_NAME: dict[str, TensorSpec] = {spec.name: spec for spec in OUTPUTS}

TASK_OUTPUTS: dict[Task, tuple[str, ...]] = {
    Task.DEPTH: (DEPTH.name,),
    Task.SEMANTIC: (SEMANTIC.name,),
    Task.INSTANCE: (INSTANCES.name,),
    Task.PANOPTIC: (PANOPTIC.name,),
    Task.MOTION: (MOTION_PROB.name,),
    Task.SCENE_FLOW: (SCENE_FLOW.name,),
    Task.POSE: (EGO_MOTION.name,),
    Task.STEERING: (STEERING.name,),
}
ALWAYS_OUTPUTS: tuple[str, ...] = (LATENT.name,)

PANOPTIC_LABEL_DIVISOR = 1000


# ----------------------------------------------------------------------------------------------
# Class table: the 19 Cityscapes train ids.


@dataclass(frozen=True)
class SemanticClass:
    """One semantic class: train id, name, RGB colour, whether it has instances, Cityscapes label id."""

    train_id: int
    name: str
    color_rgb: tuple[int, int, int]
    is_thing: bool
    cityscapes_label_id: int


CLASSES: tuple[SemanticClass, ...] = (
    SemanticClass(0, "road", (128, 64, 128), False, 7),
    SemanticClass(1, "sidewalk", (244, 35, 232), False, 8),
    SemanticClass(2, "building", (70, 70, 70), False, 11),
    SemanticClass(3, "wall", (102, 102, 156), False, 12),
    SemanticClass(4, "fence", (190, 153, 153), False, 13),
    SemanticClass(5, "pole", (153, 153, 153), False, 17),
    SemanticClass(6, "traffic light", (250, 170, 30), False, 19),
    SemanticClass(7, "traffic sign", (220, 220, 0), False, 20),
    SemanticClass(8, "vegetation", (107, 142, 35), False, 21),
    SemanticClass(9, "terrain", (152, 251, 152), False, 22),
    SemanticClass(10, "sky", (70, 130, 180), False, 23),
    SemanticClass(11, "person", (220, 20, 60), True, 24),
    SemanticClass(12, "rider", (255, 0, 0), True, 25),
    SemanticClass(13, "car", (0, 0, 142), True, 26),
    SemanticClass(14, "truck", (0, 0, 70), True, 27),
    SemanticClass(15, "bus", (0, 60, 100), True, 28),
    SemanticClass(16, "train", (0, 80, 100), True, 31),
    SemanticClass(17, "motorcycle", (0, 0, 230), True, 32),
    SemanticClass(18, "bicycle", (119, 11, 32), True, 33),
)
NUM_CLASSES = len(CLASSES)
CLASS_ID: dict[str, int] = {c.name: c.train_id for c in CLASSES}
THING_CLASS_IDS: tuple[int, ...] = tuple(c.train_id for c in CLASSES if c.is_thing)
IGNORE_ID = 255
"""Label value for pixels without ground truth (Cityscapes convention)."""


# ----------------------------------------------------------------------------------------------
# Metadata.


class MetadataKey(str, Enum):
    """Keys of the ONNX ``metadata_props``. Values are strings; structured ones are JSON."""

    CONTRACT_VERSION = "contract_version"
    TASKS = "tasks"                         # JSON list of Task values
    CLASS_NAMES = "class_names"             # JSON list, index = class id
    CLASS_COLORS = "class_colors"           # JSON list of [r, g, b]
    THING_CLASS_IDS = "thing_class_ids"     # JSON list of class ids that have instances
    INPUT_HEIGHT = "input_height"           # pixels
    INPUT_WIDTH = "input_width"             # pixels
    INTRINSICS_NORMALIZED = "intrinsics_normalized"  # JSON [fx/W, fy/H, (cx+.5)/W, (cy+.5)/H]
    DEPTH_MIN_M = "depth_min_m"
    DEPTH_MAX_M = "depth_max_m"
    STEERING_UNITS = "steering_units"       # "rad, positive left"
    STEERING_WINDOW = "steering_window"     # frames of latents the steering head attends over
    LATENT_DIM = "latent_dim"
    BACKBONE = "backbone"
    TRAINING_RECIPE = "training_recipe"     # JSON: losses, weights, steps, optimiser, teacher...
    DATA_SUMMARY = "data_summary"           # JSON: data sets, frames, sizes
    HEAD_PARAMETERS = "head_parameters"     # JSON {part: parameter count}
    HEAD_GFLOPS = "head_gflops"             # JSON {part: GFLOPs per frame at the input size}
    PRODUCER = "producer"                   # "unified_perception <version>"
    QUANTIZATION = "quantization"           # JSON, only in quantized files: format, types, calibration


REQUIRED_METADATA: tuple[MetadataKey, ...] = (
    MetadataKey.CONTRACT_VERSION, MetadataKey.TASKS, MetadataKey.CLASS_NAMES,
    MetadataKey.CLASS_COLORS, MetadataKey.INPUT_HEIGHT, MetadataKey.INPUT_WIDTH,
    MetadataKey.INTRINSICS_NORMALIZED, MetadataKey.DEPTH_MIN_M, MetadataKey.DEPTH_MAX_M,
    MetadataKey.STEERING_UNITS,
)
STEERING_UNITS = "rad, positive left"
DEFAULT_DEPTH_RANGE_M = (0.1, 100.0)
DEFAULT_STEERING_WINDOW = 16


@dataclass(frozen=True)
class ModelMetadata:
    """The parsed metadata of one model."""

    contract_version: str
    tasks: tuple[Task, ...]
    input_height: int
    input_width: int
    intrinsics_normalized: tuple[float, float, float, float]
    depth_min_m: float
    depth_max_m: float
    class_names: tuple[str, ...] = tuple(c.name for c in CLASSES)
    class_colors: tuple[tuple[int, int, int], ...] = tuple(c.color_rgb for c in CLASSES)
    thing_class_ids: tuple[int, ...] = THING_CLASS_IDS
    steering_units: str = STEERING_UNITS
    steering_window: int = DEFAULT_STEERING_WINDOW
    latent_dim: int = 0
    backbone: str = ""
    training_recipe: dict[str, Any] = field(default_factory=dict)
    data_summary: dict[str, Any] = field(default_factory=dict)
    head_parameters: dict[str, int] = field(default_factory=dict)
    head_gflops: dict[str, float] = field(default_factory=dict)
    producer: str = ""
    quantization: dict[str, Any] = field(default_factory=dict)   # empty: float weights and compute

    @property
    def expected_outputs(self) -> tuple[str, ...]:
        """Output names this model must have, in contract order."""
        return expected_outputs(self.tasks)

    @property
    def has_two_frame_task(self) -> bool:
        return any(t in TWO_FRAME_TASKS for t in self.tasks)

    def to_props(self) -> dict[str, str]:
        """Serialise to ONNX ``metadata_props`` (string -> string)."""
        values: dict[MetadataKey, Any] = {
            MetadataKey.CONTRACT_VERSION: self.contract_version,
            MetadataKey.TASKS: [t.value for t in self.tasks],
            MetadataKey.CLASS_NAMES: list(self.class_names),
            MetadataKey.CLASS_COLORS: [list(c) for c in self.class_colors],
            MetadataKey.THING_CLASS_IDS: list(self.thing_class_ids),
            MetadataKey.INPUT_HEIGHT: self.input_height,
            MetadataKey.INPUT_WIDTH: self.input_width,
            MetadataKey.INTRINSICS_NORMALIZED: list(self.intrinsics_normalized),
            MetadataKey.DEPTH_MIN_M: self.depth_min_m,
            MetadataKey.DEPTH_MAX_M: self.depth_max_m,
            MetadataKey.STEERING_UNITS: self.steering_units,
            MetadataKey.STEERING_WINDOW: self.steering_window,
            MetadataKey.LATENT_DIM: self.latent_dim,
            MetadataKey.BACKBONE: self.backbone,
            MetadataKey.TRAINING_RECIPE: self.training_recipe,
            MetadataKey.DATA_SUMMARY: self.data_summary,
            MetadataKey.HEAD_PARAMETERS: self.head_parameters,
            MetadataKey.HEAD_GFLOPS: self.head_gflops,
            MetadataKey.PRODUCER: self.producer,
        }
        if self.quantization:
            values[MetadataKey.QUANTIZATION] = self.quantization
        return {key.value: value if isinstance(value, str) else json.dumps(value)
                for key, value in values.items()}

    @classmethod
    def from_props(cls, props: Mapping[str, str]) -> "ModelMetadata":
        """Parse ONNX ``metadata_props``. Raises :class:`ContractError` naming each bad key."""
        problems = [f"metadata key '{k.value}' is missing" for k in REQUIRED_METADATA
                    if k.value not in props]
        if problems:
            raise ContractError(problems)

        def load(key: MetadataKey, default: Any = None) -> Any:
            if key.value not in props:
                return default
            raw = props[key.value]
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                return raw

        try:
            tasks = tuple(Task(t) for t in load(MetadataKey.TASKS))
        except (ValueError, TypeError) as err:
            raise ContractError([f"metadata 'tasks' is not a list of known tasks "
                                 f"({', '.join(t.value for t in Task)}): {err}"]) from None
        try:
            return cls(
                contract_version=str(props[MetadataKey.CONTRACT_VERSION.value]),
                tasks=tasks,
                input_height=int(load(MetadataKey.INPUT_HEIGHT)),
                input_width=int(load(MetadataKey.INPUT_WIDTH)),
                intrinsics_normalized=tuple(float(v) for v in load(MetadataKey.INTRINSICS_NORMALIZED)),
                depth_min_m=float(load(MetadataKey.DEPTH_MIN_M)),
                depth_max_m=float(load(MetadataKey.DEPTH_MAX_M)),
                class_names=tuple(load(MetadataKey.CLASS_NAMES)),
                class_colors=tuple(tuple(int(v) for v in c) for c in load(MetadataKey.CLASS_COLORS)),
                thing_class_ids=tuple(load(MetadataKey.THING_CLASS_IDS, list(THING_CLASS_IDS))),
                steering_units=str(props[MetadataKey.STEERING_UNITS.value]),
                steering_window=int(load(MetadataKey.STEERING_WINDOW, DEFAULT_STEERING_WINDOW)),
                latent_dim=int(load(MetadataKey.LATENT_DIM, 0)),
                backbone=str(props.get(MetadataKey.BACKBONE.value, "")),
                training_recipe=dict(load(MetadataKey.TRAINING_RECIPE, {}) or {}),
                data_summary=dict(load(MetadataKey.DATA_SUMMARY, {}) or {}),
                head_parameters=dict(load(MetadataKey.HEAD_PARAMETERS, {}) or {}),
                head_gflops=dict(load(MetadataKey.HEAD_GFLOPS, {}) or {}),
                producer=str(props.get(MetadataKey.PRODUCER.value, "")),
                quantization=dict(load(MetadataKey.QUANTIZATION, {}) or {}),
            )
        except (ValueError, TypeError) as err:
            raise ContractError([f"metadata has a value of the wrong type: {err}"]) from None


def expected_outputs(tasks: Sequence[Task]) -> tuple[str, ...]:
    """The output names a model serving ``tasks`` must have, in contract order."""
    wanted = set(ALWAYS_OUTPUTS)
    for task in tasks:
        wanted.update(TASK_OUTPUTS[Task(task)])
    if any(Task(t) in TWO_FRAME_TASKS for t in tasks):
        wanted.add(PAIR_VALID.name)
    return tuple(spec.name for spec in OUTPUTS if spec.name in wanted)


# ----------------------------------------------------------------------------------------------
# Checking a model's I/O against the contract.


class ContractError(ValueError):
    """A model does not follow the contract. ``problems`` lists every violation found."""

    def __init__(self, problems: Sequence[str], model: str = "") -> None:
        self.problems = list(problems)
        where = f"model '{model}' " if model else "model "
        super().__init__(
            f"{where}does not follow the unified_perception model contract {CONTRACT_VERSION}: "
            + "; ".join(self.problems)
            + ". Re-export it with `unified-perception export` from this version of the package.")


@dataclass(frozen=True)
class TensorInfo:
    """What a model declares about one of its tensors: dtype name and shape (None = dynamic)."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]


_ORT_TYPE_NAMES = {
    "float": "float32", "double": "float64", "float16": "float16", "bool": "bool",
    "uint8": "uint8", "int8": "int8", "uint16": "uint16", "int16": "int16",
    "int32": "int32", "int64": "int64",
}


def normalize_dtype(type_name: str) -> str:
    """Map an ONNX Runtime type string (``tensor(float)``) or numpy name to a numpy dtype name."""
    name = type_name.strip()
    if name.startswith("tensor(") and name.endswith(")"):
        name = name[len("tensor("):-1]
    return _ORT_TYPE_NAMES.get(name, name)


def _is_compatible_version(version: str) -> bool:
    try:
        major, minor = (int(p) for p in version.split(".")[:2])
        my_major, my_minor = (int(p) for p in CONTRACT_VERSION.split("."))
    except ValueError:
        return False
    return major == my_major and minor <= my_minor


def _check_shape(spec: TensorSpec, info: TensorInfo, meta: ModelMetadata) -> list[str]:
    fixed = {"H": meta.input_height, "W": meta.input_width}
    if meta.latent_dim:
        fixed["D"] = meta.latent_dim
    if len(info.shape) != len(spec.shape):
        return [f"'{spec.name}' has rank {len(info.shape)}, the contract says "
                f"{len(spec.shape)} {list(spec.shape)}"]
    problems = []
    for axis, (want, have) in enumerate(zip(spec.shape, info.shape)):
        want_value = fixed.get(want, want) if isinstance(want, str) else want
        if isinstance(want_value, int) and isinstance(have, int) and have != want_value:
            problems.append(f"'{spec.name}' axis {axis} is {have}, the contract says "
                            f"{want} = {want_value}")
    return problems


def check_model_io(inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo],
                   props: Mapping[str, str], model: str = "") -> ModelMetadata:
    """Check a model's declared inputs, outputs and metadata against the contract.

    Returns the parsed metadata. Raises :class:`ContractError` listing every problem (wrong or
    missing contract version, unknown inputs, missing outputs, wrong dtypes or fixed dims, state
    inputs without matching outputs).
    """
    version = props.get(MetadataKey.CONTRACT_VERSION.value)
    if version is None:
        raise ContractError(["it has no 'contract_version' metadata"], model)
    if not _is_compatible_version(version):
        raise ContractError([f"its contract version is {version}, this runtime understands "
                             f"{CONTRACT_VERSION.split('.')[0]}.0 to {CONTRACT_VERSION}"], model)
    try:
        meta = ModelMetadata.from_props(props)
    except ContractError as err:
        raise ContractError(err.problems, model) from None

    problems: list[str] = []
    ins = {t.name: t for t in inputs}
    outs = {t.name: t for t in outputs}
    if IMAGE.name not in ins:
        problems.append(f"input '{IMAGE.name}' is missing")
    else:
        if normalize_dtype(ins[IMAGE.name].dtype) != IMAGE.dtype:
            problems.append(f"input '{IMAGE.name}' is {normalize_dtype(ins[IMAGE.name].dtype)}, "
                            f"the contract says {IMAGE.dtype}")
        problems += _check_shape(IMAGE, ins[IMAGE.name], meta)
    for name, info in ins.items():
        if name == IMAGE.name:
            continue
        if not name.startswith(STATE_IN_PREFIX):
            problems.append(f"input '{name}' is not part of the contract (expected 'image' and "
                            f"'{STATE_IN_PREFIX}*')")
            continue
        out_name = STATE_OUT_PREFIX + name[len(STATE_IN_PREFIX):]
        if out_name not in outs:
            problems.append(f"state input '{name}' has no output '{out_name}'")
        elif normalize_dtype(outs[out_name].dtype) != normalize_dtype(info.dtype):
            problems.append(f"state '{name}' is {normalize_dtype(info.dtype)} but '{out_name}' "
                            f"is {normalize_dtype(outs[out_name].dtype)}")
        if any(not isinstance(d, int) for d in info.shape[1:]):
            problems.append(f"state input '{name}' must have static dims after the batch, "
                            f"has {list(info.shape)}")
    for name in meta.expected_outputs:
        if name not in outs:
            problems.append(f"output '{name}' is missing (tasks: "
                            f"{', '.join(t.value for t in meta.tasks)})")
            continue
        spec = OUTPUT_BY_NAME[name]
        if normalize_dtype(outs[name].dtype) != spec.dtype:
            problems.append(f"output '{name}' is {normalize_dtype(outs[name].dtype)}, the "
                            f"contract says {spec.dtype}")
        problems += _check_shape(spec, outs[name], meta)
    if problems:
        raise ContractError(problems, model)
    return meta


def state_pairs(input_names: Sequence[str]) -> dict[str, str]:
    """Map each ``state_in_<x>`` input name to its ``state_out_<x>`` output name."""
    return {name: STATE_OUT_PREFIX + name[len(STATE_IN_PREFIX):]
            for name in input_names if name.startswith(STATE_IN_PREFIX)}
