"""The node's parameters: one table gives name, default, type, range, read-only flag and description.

Everything else reads this table: the descriptors the node declares, the validation of run-time
changes, `config/car.yaml` (a test checks that it names every parameter) and :class:`NodeSettings`,
the typed snapshot the rest of the node works with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Sequence

from rcl_interfaces.msg import (
    FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType, SetParametersResult)
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter

from unified_perception import topics
from unified_perception.runtime.model_files import SHIPPED_MODEL
from unified_perception.runtime.providers import DEFAULT_TRT_CACHE_DIR, PROVIDERS, preference_problem

_TYPES = {
    bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING,
    "str[]": ParameterType.PARAMETER_STRING_ARRAY, "float[]": ParameterType.PARAMETER_DOUBLE_ARRAY,
}


@dataclass(frozen=True)
class ParamSpec:
    """One parameter. ``kind`` is a Python type or ``"str[]"`` / ``"float[]"``.

    ``range`` is inclusive ``(low, high)``. ``dynamic`` parameters may change while the node runs;
    ``unconfigured`` ones (the model and engine, read at configure) only while the node is
    unconfigured (after a failed configure or a cleanup); the others are read-only. ``check``
    returns a reason when a value is unacceptable.
    """

    name: str
    default: Any
    kind: Any
    description: str
    range: tuple[float, float] | None = None
    dynamic: bool = False
    check: Callable[[Any], str | None] | None = None
    unconfigured: bool = False

    @property
    def attr(self) -> str:
        """The :class:`NodeSettings` field name (dots become underscores)."""
        return self.name.replace(".", "_")

    def descriptor(self) -> ParameterDescriptor:
        desc = ParameterDescriptor(
            name=self.name, type=_TYPES[self.kind], description=self.description,
            read_only=not (self.dynamic or self.unconfigured))
        if self.range is not None and self.kind is float:
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(self.range[0]), to_value=float(self.range[1]), step=0.0)]
        elif self.range is not None and self.kind is int:
            desc.integer_range = [IntegerRange(
                from_value=int(self.range[0]), to_value=int(self.range[1]), step=1)]
        constraints = [f"{self.range[0]} <= value <= {self.range[1]}"] if self.range else []
        if self.unconfigured:
            constraints.append("set only while the node is unconfigured; read at configure")
        desc.additional_constraints = "; ".join(constraints)
        return desc

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable for this parameter, or None."""
        if self.kind is float and isinstance(value, (int, float)) and not math.isfinite(value):
            return f"{self.name} must be a finite number, got {value}"
        if self.range is not None and not self.range[0] <= value <= self.range[1]:
            return (f"{self.name} must be within [{self.range[0]}, {self.range[1]}], got {value}; "
                    f"the previous value is kept")
        reason = self.check(value) if self.check else None
        return f"{self.name} {reason}" if reason else None


def _length(n: int) -> Callable[[Sequence[float]], str | None]:
    return lambda v: None if len(v) == n and all(map(math.isfinite, v)) else \
        f"needs {n} finite numbers, got {list(v)}"


def _one_of(*choices: str) -> Callable[[str], str | None]:
    return lambda v: None if v in choices else f"must be one of {list(choices)}, got '{v}'"


def _non_empty(v: Sequence[str]) -> str | None:
    return None if len(v) and all(v) else f"must list at least one non-empty name, got {list(v)}"


PARAMS: tuple[ParamSpec, ...] = (
    # Model and engine (set while unconfigured: cleanup, set, configure).
    ParamSpec("model_path", SHIPPED_MODEL, str,
              "ONNX model file following the unified_perception contract; '~' is expanded; a bare "
              "file name not in the working directory is looked up in the package's models "
              "folder (default: the shipped model)", unconfigured=True),
    ParamSpec("providers", list(PROVIDERS), "str[]",
              f"ONNX Runtime providers in order of preference, among {', '.join(PROVIDERS)}; the "
              f"first that loads is used", unconfigured=True, check=preference_problem),
    ParamSpec("trt_fp16", True, bool, "let TensorRT build fp16 engines", unconfigured=True),
    ParamSpec("trt_cache_dir", DEFAULT_TRT_CACHE_DIR, str,
              "directory of the persistent TensorRT engine cache", unconfigured=True),
    ParamSpec("max_gap_s", 0.5, float,
              "s; a camera's temporal state is reset after a gap longer than this or a time jump "
              "backwards", range=(0.001, 60.0), unconfigured=True),
    ParamSpec("warmup_runs", 2, int, "inference runs on blank frames at configure",
              range=(0, 100), unconfigured=True),
    ParamSpec("intra_op_threads", 0, int, "ONNX Runtime CPU threads, 0 = its default",
              range=(0, 256), unconfigured=True),
    ParamSpec("intra_op_spinning", False, bool,
              "let ONNX Runtime's CPU threads spin-wait for work between operators within an "
              "inference call (they stop when it returns): 10-15 % faster when the node has its "
              "cores to itself, but with other processes on them inference took 1.4 to 1.9 times "
              "as long (benchmarks/bench_profile_heads.py)", unconfigured=True),
    ParamSpec("autostart", True, bool, "configure and activate at start-up"),
    # Cameras.
    ParamSpec("cameras", ["front"], "str[]",
              "camera names; each subscribes <camera>/image_raw and <camera>/camera_info and "
              "publishes <camera>/<output>; the first one drives odometry and steering",
              check=_non_empty),
    ParamSpec("batch_window_s", 0.02, float,
              "s; after a camera's frame arrives, wait this long for the other cameras' frames so "
              "they share one batched inference call (0 = never wait)", range=(0.0, 0.5),
              dynamic=True),
    ParamSpec("transport", "raw", str,
              "raw: sensor_msgs/Image on <camera>/image_raw; compressed: sensor_msgs/"
              "CompressedImage on <camera>/image_raw/compressed", check=_one_of("raw", "compressed")),
    ParamSpec("optical_frame_ids", [""], "str[]",
              "optical frame id per camera (in camera order); '' or a missing entry uses the "
              "frame_id of the incoming image"),
    # Frames (REP 105) and the primary camera's mounting.
    ParamSpec("base_frame_id", topics.BASE_FRAME, str, "vehicle body frame (REP 105)",
              check=lambda v: None if v else "must not be empty"),
    ParamSpec("odom_frame_id", topics.ODOM_FRAME, str, "odometry frame (REP 105)",
              check=lambda v: None if v else "must not be empty"),
    ParamSpec("camera_to_base_xyz", [1.5, 0.0, 1.4], "float[]",
              "m; position of the primary camera in base_link (x forward, y left, z up)",
              check=_length(3)),
    ParamSpec("camera_to_base_rpy", [0.0, 0.0, 0.0], "float[]",
              "rad; roll, pitch, yaw of the primary camera body (x forward) in base_link; the "
              "optical frame (z forward, x right, y down) follows from it", check=_length(3)),
    # Outputs (dynamic).
    ParamSpec("motion_threshold", 0.5, float,
              "motion probability above which a pixel is marked moving (255) in motion_mask",
              range=(0.0, 1.0), dynamic=True),
    ParamSpec("pointcloud_stride", 4, int,
              "pixel stride of the scene_flow/points cloud (1 = every pixel)", range=(1, 64),
              dynamic=True),
    ParamSpec("path_max_poses", 2000, int, "poses kept in the published path", range=(1, 100000),
              dynamic=True),
    ParamSpec("path_period_s", 0.5, float,
              "s of camera stamps between /path messages (each carries the whole path: 2000 poses "
              "took 4 ms to publish, every frame; 0 = every frame); /odometry has every pose",
              range=(0.0, 60.0), dynamic=True),
    ParamSpec("publish_tf", True, bool,
              "broadcast odom -> base_link on /tf and base_link -> primary camera optical frame on "
              "/tf_static (where tf2_msgs is installed); false when another node owns those"),
    ParamSpec("diagnostics_period_s", 1.0, float, "s between /diagnostics messages",
              range=(0.05, 60.0)),
    # Steering safety (dynamic).
    ParamSpec("steering.max_angle_rad", 0.5, float, "rad; steering output is clamped to +-this",
              range=(0.001, 1.5), dynamic=True),
    ParamSpec("steering.max_rate_rad_s", 1.0, float, "rad/s; largest change of the output",
              range=(0.001, 20.0), dynamic=True),
    ParamSpec("steering.smoothing_time_constant_s", 0.1, float,
              "s; first-order smoothing of the output, 0 = none", range=(0.0, 10.0), dynamic=True),
    ParamSpec("steering.stale_timeout_s", 0.3, float,
              "s; without a valid frame for this long the output is held (watchdog)",
              range=(0.01, 10.0), dynamic=True),
)
PARAM_BY_NAME: dict[str, ParamSpec] = {p.name: p for p in PARAMS}


@dataclass(frozen=True)
class NodeSettings:
    """Typed snapshot of every parameter (field = parameter name with dots as underscores)."""

    model_path: str
    providers: tuple[str, ...]
    trt_fp16: bool
    trt_cache_dir: str
    max_gap_s: float
    warmup_runs: int
    intra_op_threads: int
    intra_op_spinning: bool
    autostart: bool
    cameras: tuple[str, ...]
    batch_window_s: float
    transport: str
    optical_frame_ids: tuple[str, ...]
    base_frame_id: str
    odom_frame_id: str
    camera_to_base_xyz: tuple[float, ...]
    camera_to_base_rpy: tuple[float, ...]
    motion_threshold: float
    pointcloud_stride: int
    path_max_poses: int
    path_period_s: float
    publish_tf: bool
    diagnostics_period_s: float
    steering_max_angle_rad: float
    steering_max_rate_rad_s: float
    steering_smoothing_time_constant_s: float
    steering_stale_timeout_s: float

    def optical_frame_id(self, camera_index: int, incoming: str) -> str:
        """The configured optical frame of camera ``camera_index``, else the incoming frame id."""
        ids = self.optical_frame_ids
        return ids[camera_index] if camera_index < len(ids) and ids[camera_index] else incoming


assert {f.name for f in fields(NodeSettings)} == {p.attr for p in PARAMS}


class ParameterError(ValueError):
    """A parameter given at start-up is not acceptable."""


def declare(node: Node) -> NodeSettings:
    """Declare every parameter on ``node`` and return the validated settings.

    Raises :class:`ParameterError` naming each unacceptable start-up value: out of its range or
    of the wrong type (rclpy rejects those while declaring) or failing its check.
    """
    problems = []
    for spec in PARAMS:
        try:
            node.declare_parameter(spec.name, spec.default, spec.descriptor())
        except (InvalidParameterTypeException, InvalidParameterValueException) as err:
            problems.append(f"{spec.name}: {err}")
            node.declare_parameter(spec.name, spec.default, spec.descriptor(), ignore_override=True)
    settings = read(node)
    problems += [p for p in (spec.problem(_plain(getattr(settings, spec.attr))) for spec in PARAMS) if p]
    if problems:
        raise ParameterError("invalid parameters: " + "; ".join(problems)
                             + " (fix them in the params file or on the command line)")
    return settings


def read(node: Node) -> NodeSettings:
    """The current values of every parameter as :class:`NodeSettings`."""
    values = {spec.attr: _plain(node.get_parameter(spec.name).value) for spec in PARAMS}
    return NodeSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def validate(parameters: Sequence[Parameter], configured: bool = False) -> SetParametersResult:
    """The on-set-parameters check: every parameter of the request must pass its spec, and the
    model and engine ones (``unconfigured``) change only while the node is not ``configured``."""
    reasons = []
    for param in parameters:
        spec = PARAM_BY_NAME.get(param.name)
        if spec is not None and spec.unconfigured and configured:
            reasons.append(f"{spec.name} is read-only while the node is configured: deactivate and "
                           f"clean up the node, set it, then configure")
        elif spec is not None and (reason := spec.problem(_plain(param.value))):
            reasons.append(reason)
    return SetParametersResult(successful=not reasons, reason="; ".join(reasons))


def _plain(value: Any) -> Any:
    """Arrays from rclpy (array.array) as lists; everything else as is."""
    return list(value) if hasattr(value, "tolist") or isinstance(value, (list, tuple)) else value
