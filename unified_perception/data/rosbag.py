"""Frame windows from any ROS 2 bag (MCAP or sqlite3; ROS 1 bags too), read with rosbags' AnyReader.

Opening the reader scans the bag once: it keeps the receive time and header stamp of every camera
and ground-truth image (not the pixels), and the values of the small messages (camera_info,
odometry, steering). A sample then reads only its own messages back from the bag. The bag handle is
opened lazily per process, so the reader can be handed to DataLoader worker processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from unified_perception.data.base import DatasetSummary, SequenceDataset
from unified_perception.data.errors import DatasetConfigError, DatasetError, MissingFileError
from unified_perception.transforms import make_transform, quaternion_to_matrix
from unified_perception.data.resize import resize_nearest, scale_intrinsics
from unified_perception.data.rosbag_topics import (
    GT_IMAGE_KEYS, RosbagTopics, load_rosbag_topics, parse_rosbag_topics, per_pixel_map)
from unified_perception.data.sample import (
    DEFAULT_OFFSETS, POSE_FRAME_BASE, POSE_FRAME_CAMERA, Sample)
from unified_perception.data.stamps import NO_MATCH, match_exact, match_nearest
from unified_perception.runtime.image_codec import ImageDecodeError, decode_any_rgb, decode_array

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


@dataclass(frozen=True)
class _ImageIndex:
    """Where the messages of one image topic are: receive times and header stamps, by stamp."""

    log_ns: np.ndarray      # [N] int64, bag receive time
    stamp_ns: np.ndarray    # [N] int64, header stamp (receive time where the stamp is 0), sorted


@dataclass(frozen=True)
class _Series:
    """Values of a small topic at sorted stamps: ``values[i]`` belongs to ``stamp_ns[i]``."""

    stamp_ns: np.ndarray
    values: np.ndarray
    by_header: bool


def _stamp_ns(msg: Any, log_ns: int) -> int:
    header = getattr(msg, "header", None)
    if header is None:
        return log_ns
    stamp = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
    return stamp if stamp else log_ns


def _field(msg: Any, path: str) -> Any:
    return reduce(getattr, path.split("."), msg)


def _pose_matrix(msg: Any) -> np.ndarray:
    """``[4, 4]`` pose of an Odometry / PoseStamped / PoseWithCovarianceStamped message."""
    pose = msg.pose.pose if hasattr(msg.pose, "pose") else msg.pose
    q = pose.orientation
    rotation = quaternion_to_matrix(q.x, q.y, q.z, q.w)
    return make_transform(rotation, [pose.position.x, pose.position.y, pose.position.z])


def transform_matrix(transform: Any) -> np.ndarray:
    """``[4, 4]`` of a geometry_msgs/Transform."""
    q, t = transform.rotation, transform.translation
    return make_transform(quaternion_to_matrix(q.x, q.y, q.z, q.w), [t.x, t.y, t.z])


def chain_transform(edges: Mapping[str, tuple[str, np.ndarray]], parent: str, child: str) -> np.ndarray | None:
    """``T_parent_child [4, 4]`` by walking ``child -> parent`` links of a transform tree.

    ``edges`` maps a frame to ``(its parent, T_parent_frame)``; None if ``parent`` is not an ancestor.
    """
    T = np.eye(4)
    frame = child
    for _ in range(len(edges) + 1):
        if frame == parent:
            return T
        if frame not in edges:
            return None
        frame, T_up = edges[frame][0], edges[frame][1]
        T = T_up @ T
    return None


def _resolve_bag_path(path: Path) -> Path:
    if not path.exists():
        raise MissingFileError(path, "rosbag",
                               "Give the bag directory (with metadata.yaml) or a ROS 1 .bag file")
    if path.is_file() and path.suffix in (".mcap", ".db3") and (path.parent / "metadata.yaml").is_file():
        return path.parent
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise MissingFileError(path / "metadata.yaml", "rosbag2 metadata",
                               "Give the bag directory that `ros2 bag record` wrote")
    return path


class RosbagSequenceReader(SequenceDataset):
    """Windows of consecutive camera frames of a ROS 2 bag with matching ground truth.

    Args:
        path: bag directory (metadata.yaml + .mcap / .db3 files), one of its storage files, or a
            ROS 1 .bag file.
        topics: topic map: a :class:`RosbagTopics`, a YAML file path, a mapping with the same keys,
            or None for the defaults of the synthetic bags.
        offsets: window relative to the centre frame (default t-1, t, t+1).
        size: ``(H, W)`` to resize samples to (None = the camera's size).

    Frames are ordered by header stamp. Per-pixel ground truth of the centre frame is taken from
    the message with exactly the camera frame's header stamp (None if there is none); odometry and
    steering per window frame from the nearest message within ``match_tolerance_s`` (NaN where
    none is that close).
    """

    kind = "rosbag"

    def __init__(self, path: str | Path, topics: RosbagTopics | str | Path | Mapping[str, Any] | None = None,
                 offsets: Sequence[int] = DEFAULT_OFFSETS, size: Sequence[int] | None = None) -> None:
        super().__init__(offsets, size)
        if isinstance(topics, RosbagTopics):
            self.topics = topics
        elif isinstance(topics, Mapping):
            self.topics = parse_rosbag_topics(topics)
        else:
            self.topics = load_rosbag_topics(topics)
        self.path = _resolve_bag_path(Path(path))
        self._reader: Any = None
        self._pid = -1
        self._connections: dict[str, list[Any]] = {}
        self._build_index()

    # -- bag access ---------------------------------------------------------------------------

    def _bag(self) -> Any:
        """The open AnyReader of this process (reopened after a fork)."""
        if self._reader is None or self._pid != os.getpid():
            from rosbags.highlevel import AnyReader
            from rosbags.typesys import Stores, get_typestore
            try:
                reader = AnyReader([self.path], default_typestore=get_typestore(Stores.LATEST))
                reader.open()
            except Exception as err:  # rosbags raises several unrelated types for unreadable bags
                raise DatasetError(f"cannot open rosbag {self.path}: {err}. Check that it is a "
                                   f"complete ROS 2 (MCAP / sqlite3) or ROS 1 bag") from None
            self._reader, self._pid = reader, os.getpid()
        return self._reader

    def close(self) -> None:
        """Close the bag handle (it is reopened on the next access)."""
        if self._reader is not None and self._pid == os.getpid():
            self._reader.close()
        self._reader = None

    def __enter__(self) -> "RosbagSequenceReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_reader"], state["_pid"], state["_connections"] = None, -1, {}
        return state

    def _topic_connections(self, topic: str) -> list[Any]:
        if not self._connections:
            for conn in self._bag().connections:
                self._connections.setdefault(conn.topic, []).append(conn)
        return self._connections.get(topic, [])

    # -- index --------------------------------------------------------------------------------

    def _selected_topics(self) -> dict[str, str]:
        """Key -> topic of the configured topics the bag has; errors for missing required ones."""
        bag = self._bag()
        present = {conn.topic: conn.msgtype for conn in bag.connections}
        listing = ", ".join(f"{t} ({present[t]})" for t in sorted(present)) or "none"
        selected: dict[str, str] = {}
        for key in self.topics.topic_keys():
            topic = getattr(self.topics, key)
            if topic is None:
                continue
            if topic not in present:
                if key == "image" or (key in self.topics.explicit and key != "tf_static"):
                    raise DatasetConfigError(
                        f"topic '{topic}' (key '{key}' of the topic map) is not in bag {self.path}; "
                        f"its topics are: {listing}. Set '{key}' in the topic map YAML"
                        + ("" if key == "image" else " (or to null)"))
                continue
            selected[key] = topic
        if present[selected["image"]] not in IMAGE_TYPES:
            raise DatasetConfigError(
                f"camera topic '{selected['image']}' in {self.path} is {present[selected['image']]}; "
                f"it must be one of {', '.join(IMAGE_TYPES)} (key 'image' of the topic map)")
        if "camera_info" not in selected and self.topics.intrinsics is None:
            raise DatasetConfigError(
                f"bag {self.path} has no camera_info topic '{self.topics.camera_info}' and the topic "
                f"map gives no 'intrinsics'; set 'camera_info' to the bag's CameraInfo topic or "
                f"'intrinsics: [fx, fy, cx, cy]'")
        return selected

    def _build_index(self) -> None:
        bag = self._bag()
        self._selected = self._selected_topics()
        key_of = {topic: key for key, topic in self._selected.items()}
        image_keys = ("image", *GT_IMAGE_KEYS)
        logs: dict[str, list[int]] = {k: [] for k in self._selected}
        stamps: dict[str, list[int]] = {k: [] for k in self._selected}
        values: dict[str, list[Any]] = {k: [] for k in self._selected}
        self._native_size: tuple[int, int] | None = None
        camera_frame = base_frame = ""
        tf_edges: dict[str, tuple[str, np.ndarray]] = {}
        connections = [c for c in bag.connections if c.topic in key_of]
        for conn, log_ns, raw in bag.messages(connections=connections):
            key = key_of[conn.topic]
            msg = bag.deserialize(raw, conn.msgtype)
            logs[key].append(log_ns)
            stamps[key].append(_stamp_ns(msg, log_ns))
            if key == "image" and not camera_frame:
                camera_frame = msg.header.frame_id
                if hasattr(msg, "height"):
                    self._native_size = (int(msg.height), int(msg.width))
            if key == "odometry" and not base_frame:
                base_frame = getattr(msg, "child_frame_id", "") or ""
            if key == "tf_static":
                tf_edges.update({t.child_frame_id: (t.header.frame_id, transform_matrix(t.transform))
                                 for t in getattr(msg, "transforms", ())})
            elif key not in image_keys:
                values[key].append(self._small_value(key, conn, msg))
        if not logs["image"]:
            raise DatasetError(f"camera topic '{self._selected['image']}' of bag {self.path} has no "
                               f"messages")
        self._images = {k: self._image_index(logs[k], stamps[k]) for k in image_keys if k in logs}
        if logs.get("camera_info"):
            Ks, sizes = zip(*values["camera_info"])
            values["camera_info"] = [np.concatenate([K.ravel(), hw]) for K, hw in zip(Ks, sizes)]
        self._series = {k: self._series_of(k, logs[k], stamps[k], values[k])
                        for k in ("camera_info", "odometry", "steering") if logs.get(k)}
        self._centres = self._window_centres(len(self._images["image"].stamp_ns))
        self._T_base_cam = self.topics.base_to_camera()
        if self._T_base_cam is None and base_frame and camera_frame:
            self._T_base_cam = chain_transform(tf_edges, base_frame, camera_frame)

    @staticmethod
    def _image_index(logs: list[int], stamps: list[int]) -> _ImageIndex:
        order = np.argsort(np.asarray(stamps, dtype=np.int64), kind="stable")
        return _ImageIndex(np.asarray(logs, dtype=np.int64)[order],
                           np.asarray(stamps, dtype=np.int64)[order])

    def _series_of(self, key: str, logs: list[int], stamps: list[int], values: list[Any]) -> _Series:
        by_header = key != "steering" or self._steering_has_header
        when = np.asarray(stamps if by_header else logs, dtype=np.int64)
        order = np.argsort(when, kind="stable")
        return _Series(when[order], np.asarray(values)[order], by_header)

    def _small_value(self, key: str, conn: Any, msg: Any) -> Any:
        if key == "camera_info":
            return self._camera_info(conn, msg)
        if key == "odometry":
            try:
                return _pose_matrix(msg)
            except AttributeError:
                raise DatasetConfigError(
                    f"odometry topic '{conn.topic}' is {conn.msgtype}, which has no pose; use "
                    f"nav_msgs/Odometry or geometry_msgs/PoseStamped (key 'odometry')") from None
        self._steering_has_header = hasattr(msg, "header")
        try:
            return float(_field(msg, self.topics.steering_field)) * self.topics.steering_scale
        except (AttributeError, TypeError, ValueError):
            raise DatasetConfigError(
                f"steering topic '{conn.topic}' ({conn.msgtype}) has no number at field "
                f"'{self.topics.steering_field}' (key 'steering_field' of the topic map)") from None

    @staticmethod
    def _camera_info(conn: Any, msg: Any) -> tuple[np.ndarray, tuple[int, int]]:
        """K ``[3, 3]`` and the ``(height, width)`` it was calibrated at."""
        K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise DatasetError(
                f"camera_info on '{conn.topic}' has no calibration (K = {K.ravel().tolist()}); "
                f"calibrate the camera, or give 'intrinsics: [fx, fy, cx, cy]' in the topic map "
                f"and set 'camera_info: null'")
        return K, (int(msg.height), int(msg.width))

    # -- samples ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._centres)

    def _intrinsics(self, stamp_ns: int, image_hw: tuple[int, int]) -> np.ndarray:
        series = self._series.get("camera_info")
        if series is None:
            fx, fy, cx, cy = self.topics.intrinsics  # type: ignore[misc]
            return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        index = match_nearest(series.stamp_ns, np.array([stamp_ns]), np.iinfo(np.int64).max // 2)[0]
        packed = series.values[index]  # K (9 values, row major) then height, width
        K, info_hw = packed[:9].reshape(3, 3), (int(packed[9]), int(packed[10]))
        if min(info_hw) > 0 and info_hw != image_hw:
            K = scale_intrinsics(K, info_hw, image_hw)
        return K

    def _fetch(self, wanted: dict[str, tuple[int, int]]) -> dict[str, Any]:
        """Deserialised messages for ``{name: (topic key, index into that key's image index)}``."""
        want: dict[tuple[str, int, int], str] = {}
        for name, (key, index) in wanted.items():
            table = self._images[key]
            want[(self._selected[key], int(table.log_ns[index]), int(table.stamp_ns[index]))] = name
        logs = [log for _, log, _ in want]
        bag = self._bag()
        connections = [c for key in {k for k, _ in wanted.values()}
                       for c in self._topic_connections(self._selected[key])]
        found: dict[str, Any] = {}
        for conn, log_ns, raw in bag.messages(connections=connections, start=min(logs), stop=max(logs) + 1):
            if not any(t == conn.topic and log == log_ns for t, log, _ in want):
                continue
            msg = bag.deserialize(raw, conn.msgtype)
            name = want.get((conn.topic, log_ns, _stamp_ns(msg, log_ns)))
            if name is not None and name not in found:
                found[name] = msg
        missing = sorted(set(wanted) - set(found))
        if missing:
            raise DatasetError(f"bag {self.path} changed since it was indexed: messages {missing} are "
                               f"gone; open the reader again")
        return found

    def _decode_rgb(self, msg: Any, stamp_ns: int) -> np.ndarray:
        try:
            return decode_any_rgb(msg)
        except ImageDecodeError as err:
            raise DatasetError(f"camera image at stamp {stamp_ns} ns on '{self._selected['image']}' "
                               f"of {self.path}: {err}") from None

    def _decode_gt(self, key: str, msg: Any, image_hw: tuple[int, int]) -> np.ndarray:
        try:
            array = decode_array(msg)
        except ImageDecodeError as err:
            raise DatasetError(f"ground truth '{key}' on '{self._selected[key]}' of {self.path}: "
                               f"{err}") from None
        return per_pixel_map(key, resize_nearest(array, image_hw))

    def _per_frame(self, key: str, frame_stamps: np.ndarray, frame_logs: np.ndarray) -> np.ndarray | None:
        series = self._series.get(key)
        if series is None:
            return None
        tolerance = int(round(self.topics.match_tolerance_s * 1e9))
        index = match_nearest(series.stamp_ns, frame_stamps if series.by_header else frame_logs,
                              tolerance)
        values = series.values[np.maximum(index, 0)].astype(np.float64)
        values[index == NO_MATCH] = np.nan
        return values

    def _load(self, index: int) -> Sample:
        frames = self._centres[index] + np.asarray(self.offsets)
        camera = self._images["image"]
        centre_stamp = int(camera.stamp_ns[frames[self.offsets.index(0)]])
        wanted = {f"frame{i}": ("image", int(f)) for i, f in enumerate(frames)}
        for key in GT_IMAGE_KEYS:
            table = self._images.get(key)
            if table is not None:
                match = match_exact(table.stamp_ns, np.array([centre_stamp]))[0]
                if match != NO_MATCH:
                    wanted[key] = (key, int(match))
        messages = self._fetch(wanted)
        stamps = camera.stamp_ns[frames]
        images = np.stack([self._decode_rgb(messages[f"frame{i}"], int(stamps[i]))
                           for i in range(len(frames))])
        image_hw = (int(images.shape[1]), int(images.shape[2]))
        gt = {key: self._decode_gt(key, messages[key], image_hw)
              for key in GT_IMAGE_KEYS if key in messages}
        poses = self._per_frame("odometry", stamps, camera.log_ns[frames])
        pose_frame = POSE_FRAME_BASE if poses is not None else ""
        if poses is not None and self._T_base_cam is not None:
            poses, pose_frame = poses @ self._T_base_cam, POSE_FRAME_CAMERA
        steering = self._per_frame("steering", stamps, camera.log_ns[frames])
        return Sample(
            images=images, K=self._intrinsics(centre_stamp, image_hw),
            stamps_s=stamps.astype(np.float64) * 1e-9, offsets=self.offsets,
            source=f"rosbag:{self.path}@{centre_stamp}",
            depth_m=gt.get("depth"), semantic=gt.get("semantic"), instances=gt.get("instances"),
            panoptic=gt.get("panoptic"), motion_mask=gt.get("motion_mask"),
            scene_flow=gt.get("scene_flow"), poses=poses, pose_frame=pose_frame,
            steering_rad=None if steering is None else steering.astype(np.float32))

    # -- description --------------------------------------------------------------------------

    def ground_truth(self) -> tuple[str, ...]:
        """The :class:`Sample` fields this bag fills."""
        names = {"depth": "depth_m", "odometry": "poses", "steering": "steering_rad"}
        have = [names.get(k, k) for k in (*GT_IMAGE_KEYS, "odometry", "steering")
                if k in self._images or k in self._series]
        return tuple(have)

    def describe(self) -> DatasetSummary:
        native = self._native_size
        if native is None:  # compressed camera: decode one frame to learn the size
            msg = self._fetch({"frame": ("image", 0)})["frame"]
            native = tuple(self._decode_rgb(msg, int(self._images["image"].stamp_ns[0])).shape[:2])
        return DatasetSummary(
            kind=self.kind, path=str(self.path), samples=len(self),
            frames=int(self._images["image"].stamp_ns.size), offsets=self.offsets,
            native_size=native, size=self.size or native, ground_truth=self.ground_truth(),
            details={"topics": dict(self._selected),
                     "pose_frame": "" if "odometry" not in self._series else (
                         POSE_FRAME_BASE if self._T_base_cam is None else POSE_FRAME_CAMERA)})
