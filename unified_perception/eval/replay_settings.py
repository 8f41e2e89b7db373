"""The node parameters replay needs, read from the same ROS 2 params file the node is started with.

Offline replay has no node to declare parameters, so it reads the params YAML (``config/car.yaml``
layout: ``<node key>: {ros__parameters: {...}}``, nested keys joined with dots) over the package's
own ``config/car.yaml``. Live replay hands the same file to the node (``--params-file``), so both
modes run with the same values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

from unified_perception.runtime.odometry import camera_mount_pose, camera_to_base_extrinsic
from unified_perception.runtime.steering import SteeringLimits

PACKAGE = "unified_perception"


class ReplayError(RuntimeError):
    """A problem a user can fix (bag, model, options). The message says what to do."""


def default_params_file() -> Path | None:
    """The package's ``config/car.yaml``: next to the sources, else in the ament share folder."""
    source = Path(__file__).resolve().parents[2] / "config" / "car.yaml"
    if source.is_file():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory
        shared = Path(get_package_share_directory(PACKAGE)) / "config" / "car.yaml"
    except Exception:  # not installed with colcon / no ament index
        return None
    return shared if shared.is_file() else None


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def read_params_file(path: Path) -> dict[str, Any]:
    """Parameters of the ``unified_perception`` node in a ROS 2 params YAML, dotted names -> values."""
    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ReplayError(f"cannot read the params file {path}: {err}") from None
    if not isinstance(document, Mapping):
        raise ReplayError(f"params file {path} must map a node name to 'ros__parameters'")
    params: dict[str, Any] = {}
    for key, section in document.items():
        node = str(key).rsplit("/", 1)[-1]
        if node in (PACKAGE, "**") and isinstance(section, Mapping):
            params.update(_flatten(section.get("ros__parameters") or {}))
    if not params:
        raise ReplayError(f"params file {path} has no 'ros__parameters' for the node "
                          f"'{PACKAGE}' (use the layout of config/car.yaml)")
    return params


@dataclass(frozen=True)
class ReplaySettings:
    """The node's parameters that change what replay computes (names as in config/car.yaml)."""

    params_file: Path
    providers: tuple[str, ...]
    trt_fp16: bool
    trt_cache_dir: str
    max_gap_s: float
    intra_op_threads: int
    intra_op_spinning: bool
    optical_frame_id: str            # '' = the incoming image's frame id
    base_frame_id: str
    odom_frame_id: str
    camera_to_base_xyz: tuple[float, float, float]
    camera_to_base_rpy: tuple[float, float, float]
    motion_threshold: float
    pointcloud_stride: int
    steering: SteeringLimits

    def T_base_cam(self) -> np.ndarray:
        """``[4, 4] float64`` pose of the camera optical frame in base_link."""
        return camera_to_base_extrinsic(self.camera_to_base_xyz, self.camera_to_base_rpy)

    def with_camera_mount(self, T_base_cam: np.ndarray) -> "ReplaySettings":
        """These settings with the camera mounted at ``T_base_cam`` (``[4, 4]``, optical frame in
        base_link): ``camera_to_base_xyz`` / ``_rpy`` as the node would be given them."""
        xyz, rpy = camera_mount_pose(T_base_cam)
        return replace(self, camera_to_base_xyz=xyz, camera_to_base_rpy=rpy)


def load_settings(params_file: str | Path | None = None) -> ReplaySettings:
    """Settings from ``params_file`` over the package's ``config/car.yaml``.

    Raises :class:`ReplayError` naming a missing or malformed parameter.
    """
    default = default_params_file()
    if default is None and params_file is None:
        raise ReplayError("the package's config/car.yaml is not found: give the node's params "
                          "file with --params")
    values = read_params_file(default) if default is not None else {}
    chosen = Path(params_file) if params_file is not None else default
    if params_file is not None:
        if not chosen.is_file():
            raise ReplayError(f"params file {chosen} does not exist: give the node's params YAML "
                              f"(like config/car.yaml) with --params")
        values.update(read_params_file(chosen))

    def get(name: str, kind: type) -> Any:
        if name not in values:
            raise ReplayError(f"parameter '{name}' is missing from {chosen}")
        value = values[name]
        ok = (isinstance(value, kind) if kind is not float else
              isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))
        if not ok:
            raise ReplayError(f"parameter '{name}' in {chosen} must be a {kind.__name__}, got {value!r}")
        return float(value) if kind is float else value

    def numbers(name: str) -> tuple[float, float, float]:
        value = get(name, list)
        if len(value) != 3:
            raise ReplayError(f"parameter '{name}' in {chosen} needs 3 numbers, got {value!r}")
        return tuple(float(v) for v in value)  # type: ignore[return-value]

    frame_ids = get("optical_frame_ids", list)
    try:
        steering = SteeringLimits(
            max_angle_rad=get("steering.max_angle_rad", float),
            max_rate_rad_s=get("steering.max_rate_rad_s", float),
            smoothing_time_constant_s=get("steering.smoothing_time_constant_s", float),
            stale_timeout_s=get("steering.stale_timeout_s", float))
    except ValueError as err:
        raise ReplayError(f"{chosen}: {err}") from None
    settings = ReplaySettings(
        params_file=chosen, providers=tuple(get("providers", list)), trt_fp16=get("trt_fp16", bool),
        trt_cache_dir=get("trt_cache_dir", str), max_gap_s=get("max_gap_s", float),
        intra_op_threads=get("intra_op_threads", int),
        intra_op_spinning=get("intra_op_spinning", bool),
        optical_frame_id=str(frame_ids[0]) if frame_ids else "",
        base_frame_id=get("base_frame_id", str), odom_frame_id=get("odom_frame_id", str),
        camera_to_base_xyz=numbers("camera_to_base_xyz"),
        camera_to_base_rpy=numbers("camera_to_base_rpy"),
        motion_threshold=get("motion_threshold", float),
        pointcloud_stride=get("pointcloud_stride", int), steering=steering)
    try:
        settings.T_base_cam()
    except ValueError as err:
        raise ReplayError(f"{chosen}: {err}") from None
    return settings
