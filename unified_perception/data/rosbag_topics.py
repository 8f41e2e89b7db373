"""Which topics of a ROS 2 bag hold the camera, its intrinsics, ground truth and steering.

Configuration is data: a flat YAML mapping (see ``rosbag_topics_example.yaml`` next to this file)
validated on load; every problem names the key at fault. Defaults match the synthetic bags
(``unified_perception.topics``): ``/camera/image_raw``, ``/camera/camera_info``, ``/gt/<output>``.
A key set to ``null`` switches that topic off.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

from unified_perception import topics
from unified_perception.data.errors import DatasetConfigError, MissingFileError

GT_IMAGE_KEYS: tuple[str, ...] = (
    "depth", "semantic", "instances", "panoptic", "motion_mask", "scene_flow")
"""Ground-truth image topics (sensor_msgs/Image), matched to camera frames by exact header stamp."""


def per_pixel_map(key: str, array: np.ndarray) -> np.ndarray:
    """A decoded image of the per-pixel topic ``key`` (one of :data:`GT_IMAGE_KEYS`) in the dtype
    and meaning of the sample's field: depth ``float32`` m with 0 = no value (non-finite and
    non-positive values become 0); semantic ``uint8`` train ids; motion_mask ``bool`` (above 127 =
    moving); scene_flow ``float32`` m; instances and panoptic ``int32``. Predictions written in the
    node's encodings read the same way."""
    if key == "depth":
        depth = np.asarray(array, dtype=np.float32)
        return np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(0.0))
    if key == "semantic":
        return np.asarray(array, dtype=np.uint8)
    if key == "motion_mask":
        return np.asarray(array) > 127
    if key == "scene_flow":
        return np.asarray(array, dtype=np.float32)
    return np.asarray(array, dtype=np.int32)

EXAMPLE_YAML = Path(__file__).with_name("rosbag_topics_example.yaml")


def _sim(name: str) -> str:
    return "/" + topics.camera_topic(topics.SIM_CAMERA, name)


@dataclass(frozen=True)
class RosbagTopics:
    """Topic map of one bag. Topic values are absolute topic names or None (not used).

    Attributes:
        image: camera topic, sensor_msgs/Image (any common encoding) or CompressedImage.
        camera_info: sensor_msgs/CameraInfo of that camera (None: use ``intrinsics``).
        depth, semantic, instances, panoptic, motion_mask, scene_flow: ground-truth images
            (32FC1 m, mono8 train ids, 16UC1/32SC1 ids, 32SC1 class*1000+instance, mono8 255 =
            moving, 32FC3 m), matched to the camera frame by exact header stamp.
        odometry: nav_msgs/Odometry (or any PoseStamped-like message) of the base frame in odom,
            matched by nearest header stamp within ``match_tolerance_s``.
        steering: steering topic; ``steering_field`` is the dotted path of the angle in the message
            (``data`` for std_msgs/Float32, ``drive.steering_angle`` for Ackermann), multiplied by
            ``steering_scale`` to give rad, positive left. Messages with a header are matched by
            header stamp, others (Float32) by the bag's receive time of the camera frame.
        tf_static: tf2_msgs/TFMessage topic of static transforms. Where neither ``T_base_cam`` is
            given nor this is null, the chain from the odometry child frame (base) to the camera
            image's frame id is read from it, and poses come out as ``T_odom_cam``.
        match_tolerance_s: largest stamp difference accepted for odometry and steering (s).
        intrinsics: ``(fx, fy, cx, cy)`` in pixels of the camera image, used where the bag has no
            camera_info.
        T_base_cam: ``[4, 4]`` pose of the camera optical frame in the base frame; when given, poses
            come out as ``T_odom_cam`` instead of ``T_odom_base``.
        explicit: keys the user set (a topic named explicitly must exist in the bag).
    """

    image: str | None = _sim(topics.CAMERA_IMAGE)
    camera_info: str | None = _sim(topics.CAMERA_INFO)
    depth: str | None = topics.gt_topic(topics.DEPTH)
    semantic: str | None = topics.gt_topic(topics.SEMANTIC)
    instances: str | None = topics.gt_topic(topics.INSTANCES)
    panoptic: str | None = topics.gt_topic(topics.PANOPTIC)
    motion_mask: str | None = topics.gt_topic(topics.MOTION_MASK)
    scene_flow: str | None = topics.gt_topic(topics.SCENE_FLOW)
    odometry: str | None = topics.gt_topic(topics.ODOMETRY)
    steering: str | None = topics.gt_topic(topics.STEERING_ANGLE)
    tf_static: str | None = topics.TF_STATIC.name
    steering_field: str = "data"
    steering_scale: float = 1.0
    match_tolerance_s: float = 0.02
    intrinsics: tuple[float, float, float, float] | None = None
    T_base_cam: tuple[tuple[float, ...], ...] | None = None
    explicit: frozenset[str] = frozenset()

    def topic_keys(self) -> tuple[str, ...]:
        """Keys whose value is a topic name."""
        return ("image", "camera_info", *GT_IMAGE_KEYS, "odometry", "steering", "tf_static")

    def base_to_camera(self) -> np.ndarray | None:
        """``T_base_cam`` as ``[4, 4] float64`` (None if not given)."""
        return None if self.T_base_cam is None else np.array(self.T_base_cam, dtype=np.float64)


_TOPIC_KEYS = RosbagTopics().topic_keys()
_KNOWN_KEYS = tuple(f.name for f in fields(RosbagTopics) if f.name != "explicit")


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise DatasetConfigError(f"rosbag topic map: '{key}' must be a number, got {value!r}")
    return float(value)


def parse_rosbag_topics(values: Mapping[str, Any] | None, origin: str = "topic map") -> RosbagTopics:
    """Validate a topic mapping (as loaded from YAML) and fill defaults.

    Raises :class:`DatasetConfigError` naming the first bad key.
    """
    values = dict(values or {})
    unknown = sorted(set(values) - set(_KNOWN_KEYS))
    if unknown:
        raise DatasetConfigError(
            f"{origin}: unknown key '{unknown[0]}'; known keys: {', '.join(_KNOWN_KEYS)}")
    parsed: dict[str, Any] = {}
    for key in _TOPIC_KEYS:
        if key not in values:
            continue
        topic = values[key]
        if topic is not None and (not isinstance(topic, str) or not topic.strip()):
            raise DatasetConfigError(
                f"{origin}: '{key}' must be a topic name such as '/camera/image_raw' or null, "
                f"got {topic!r}")
        parsed[key] = None if topic is None else "/" + topic.strip().lstrip("/")
    if "image" in parsed and parsed["image"] is None:
        raise DatasetConfigError(f"{origin}: 'image' (the camera topic) cannot be null")
    if "steering_field" in values:
        field_path = values["steering_field"]
        if not isinstance(field_path, str) or not all(p.isidentifier() for p in field_path.split(".")):
            raise DatasetConfigError(
                f"{origin}: 'steering_field' must be a dotted field path such as 'data' or "
                f"'drive.steering_angle', got {field_path!r}")
        parsed["steering_field"] = field_path
    if "steering_scale" in values:
        parsed["steering_scale"] = _number("steering_scale", values["steering_scale"])
    if "match_tolerance_s" in values:
        tolerance = _number("match_tolerance_s", values["match_tolerance_s"])
        if tolerance < 0:
            raise DatasetConfigError(f"{origin}: 'match_tolerance_s' must be >= 0, got {tolerance}")
        parsed["match_tolerance_s"] = tolerance
    if values.get("intrinsics") is not None:
        raw = values["intrinsics"]
        if not isinstance(raw, (list, tuple)) or len(raw) != 4:
            raise DatasetConfigError(
                f"{origin}: 'intrinsics' must be [fx, fy, cx, cy] in pixels, got {raw!r}")
        fx, fy, cx, cy = (_number("intrinsics", v) for v in raw)
        if fx <= 0 or fy <= 0:
            raise DatasetConfigError(f"{origin}: 'intrinsics' needs positive fx, fy, got {raw!r}")
        parsed["intrinsics"] = (fx, fy, cx, cy)
    if values.get("T_base_cam") is not None:
        raw = values["T_base_cam"]
        matrix = np.asarray(raw, dtype=object)
        if matrix.shape != (4, 4):
            raise DatasetConfigError(
                f"{origin}: 'T_base_cam' must be a 4x4 matrix (list of 4 rows of 4 numbers), "
                f"got {raw!r}")
        rows = tuple(tuple(_number("T_base_cam", v) for v in row) for row in raw)
        rotation = np.array(rows)[:3, :3]
        if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-4) or rows[3] != (0, 0, 0, 1):
            raise DatasetConfigError(
                f"{origin}: 'T_base_cam' must be a rigid transform (orthonormal rotation, last "
                f"row 0 0 0 1)")
        parsed["T_base_cam"] = rows
    return RosbagTopics(**parsed, explicit=frozenset(values))


def load_rosbag_topics(path: str | Path | None) -> RosbagTopics:
    """Read and validate a topic-map YAML file (None: the defaults of the synthetic bags)."""
    if path is None:
        return RosbagTopics()
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, "rosbag topic map",
                               f"Write one like {EXAMPLE_YAML.name} (shipped with the package)")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise DatasetConfigError(f"rosbag topic map {path} is not valid YAML: {err}") from None
    if values is not None and not isinstance(values, dict):
        raise DatasetConfigError(
            f"rosbag topic map {path} must be a mapping of keys to values, got "
            f"{type(values).__name__}")
    return parse_rosbag_topics(values, origin=f"rosbag topic map {path}")
