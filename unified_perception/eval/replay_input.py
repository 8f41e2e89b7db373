"""The camera frames of an input bag, in recorded order, for replay.

Topic names come from the data reader's topic map (:mod:`unified_perception.data.rosbag_topics`,
``--topics MAP.yaml``; default: the synthetic bags'). Each frame carries its image message, the
latest camera_info received before it (None until one came) and the raw CDR bytes of both, so the
offline path decodes them and the live player publishes them unchanged. MCAP and sqlite3 bags.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from unified_perception import topics
from unified_perception.data.errors import DatasetConfigError, MissingFileError
from unified_perception.data.rosbag import chain_transform, transform_matrix
from unified_perception.data.rosbag_topics import GT_IMAGE_KEYS, RosbagTopics, load_rosbag_topics
from unified_perception.eval.replay_settings import ReplayError, ReplaySettings

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"


@dataclass(frozen=True)
class InputFrame:
    """One camera message of the input bag.

    ``stamp_ns``: its header stamp (the receive time where the stamp is 0); ``log_ns``: the bag's
    receive time; ``image`` / ``info``: rosbags messages; ``image_cdr`` / ``info_cdr``: their bytes.
    """

    index: int
    stamp_ns: int
    log_ns: int
    image: Any
    image_cdr: bytes
    info: Any | None
    info_cdr: bytes | None


def camera_name(image_topic: str) -> str:
    """The node's camera name for a camera topic: ``/front/image_raw`` -> ``front``.

    The ``image_raw`` (or ``image_raw/compressed``) suffix is dropped, else the last name part.
    """
    parts = image_topic.strip("/").split("/")
    if parts[-1] == "compressed":
        parts = parts[:-1]
    parts = parts[:-1]
    return "/".join(parts) or topics.SIM_CAMERA


class InputBag:
    """An input bag opened for replay. Raises :class:`ReplayError` for an unreadable bag or a
    camera topic it does not have (naming the topics it has)."""

    def __init__(self, path: str | Path, topic_map: str | Path | None = None) -> None:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        try:
            self.topics: RosbagTopics = load_rosbag_topics(topic_map)
        except (DatasetConfigError, MissingFileError) as err:
            raise ReplayError(str(err)) from None
        self.path = Path(path)
        if not self.path.exists():
            raise ReplayError(f"input bag {self.path} does not exist: give the bag folder that "
                              f"`ros2 bag record` or `unified-perception synth` wrote")
        try:
            self._reader = AnyReader([self.path], default_typestore=get_typestore(Stores.LATEST))
            self._reader.open()
        except Exception as err:  # rosbags raises several unrelated types for unreadable bags
            raise ReplayError(f"cannot open bag {self.path}: {err}. Check that it is a complete "
                              f"ROS 2 bag (MCAP or sqlite3)") from None
        present = {c.topic: c.msgtype for c in self._reader.connections}
        self.image_topic = self.topics.image or ""
        if present.get(self.image_topic) not in IMAGE_TYPES:
            listing = ", ".join(f"{t} ({m})" for t, m in sorted(present.items())) or "none"
            self.close()
            what = "is not in" if self.image_topic not in present else "is not an image topic of"
            raise ReplayError(f"camera topic '{self.image_topic}' {what} bag {self.path}; its topics "
                              f"are: {listing}. Name the camera topic as 'image' in a topic map "
                              f"YAML (--topics, see data/rosbag_topics_example.yaml)")
        self.compressed = present[self.image_topic] == "sensor_msgs/msg/CompressedImage"
        info = self.topics.camera_info
        self.info_topic = info if info and present.get(info) == CAMERA_INFO_TYPE else None
        gt_keys = (*GT_IMAGE_KEYS, "odometry", "steering")
        self.has_ground_truth = any(getattr(self.topics, k) in present for k in gt_keys)
        self.camera = camera_name(self.image_topic)
        self.frame_count = sum(c.msgcount for c in self._reader.connections
                               if c.topic == self.image_topic)
        if self.frame_count == 0:
            self.close()
            raise ReplayError(f"camera topic '{self.image_topic}' of bag {self.path} has no messages")

    def camera_mount(self, base_frame: str, optical_frame: str = "") -> tuple[np.ndarray, str] | None:
        """The camera's mounting on the car as this bag records it: ``(T_base_cam [4, 4] float64,
        where it came from)``, or None when the bag does not say.

        ``T_base_cam`` of the topic map when given; else the chain ``base_frame`` -> the camera's
        optical frame (``optical_frame``, or the first image's ``header.frame_id``) through the
        bag's static transforms (the topic map's ``tf_static`` topic). Raises
        :class:`ReplayError` when those messages cannot be read."""
        if (given := self.topics.base_to_camera()) is not None:
            return given, "T_base_cam of the topic map"
        present = {c.topic for c in self._reader.connections}
        if not self.topics.tf_static or self.topics.tf_static not in present:
            return None
        try:
            if not optical_frame:
                image_conns = [c for c in self._reader.connections if c.topic == self.image_topic]
                for conn, _, raw in self._reader.messages(connections=image_conns):
                    optical_frame = self._reader.deserialize(raw, conn.msgtype).header.frame_id
                    break
            edges: dict[str, tuple[str, np.ndarray]] = {}
            tf_conns = [c for c in self._reader.connections if c.topic == self.topics.tf_static]
            for conn, _, raw in self._reader.messages(connections=tf_conns):
                for t in getattr(self._reader.deserialize(raw, conn.msgtype), "transforms", ()):
                    edges[t.child_frame_id] = (t.header.frame_id, transform_matrix(t.transform))
        except Exception as err:  # truncated chunks, bad CDR: rosbags raises assorted types
            raise ReplayError(f"the static transforms of bag {self.path} cannot be read "
                              f"({type(err).__name__}: {err}); it is corrupt or incomplete") from None
        T = chain_transform(edges, base_frame, optical_frame) if optical_frame else None
        if T is None:
            return None
        return T, f"{self.topics.tf_static} of the bag ({base_frame} -> {optical_frame})"

    def frames(self) -> Iterator[InputFrame]:
        """Camera frames in the bag's order (receive time). Raises :class:`ReplayError` when a
        message cannot be read (a corrupt bag)."""
        index = 0
        try:
            infos = self._camera_infos()
            image_conns = [c for c in self._reader.connections if c.topic == self.image_topic]
            for conn, log_ns, raw in self._reader.messages(connections=image_conns):
                msg = self._reader.deserialize(raw, conn.msgtype)
                stamp = int(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec or log_ns)
                info = infos.for_frame(stamp, int(log_ns))
                yield InputFrame(index, stamp, int(log_ns), msg, bytes(raw),
                                 *(info if info is not None else (None, None)))
                index += 1
        except Exception as err:  # truncated chunks, bad CDR: rosbags raises assorted types
            raise ReplayError(f"bag {self.path} cannot be read past frame {index} "
                              f"({type(err).__name__}: {err}); it is corrupt or incomplete") from None

    def _camera_infos(self) -> "_CameraInfos":
        infos = _CameraInfos()
        conns = [c for c in self._reader.connections if c.topic == self.info_topic]
        for conn, log_ns, raw in self._reader.messages(connections=conns):
            msg = self._reader.deserialize(raw, conn.msgtype)
            stamp = int(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec or log_ns)
            infos.add(stamp, int(log_ns), msg, bytes(raw))
        return infos

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> "InputBag":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def mount_as_recorded(settings: ReplaySettings, source: InputBag,
                      say: Callable[[str], None] = print) -> ReplaySettings:
    """``settings`` with the camera mounted where ``source`` records it (:meth:`InputBag.camera_mount`
    from ``settings.base_frame_id`` to the bag's camera frame), else unchanged; ``say`` gets one
    line naming the mounting the replay uses. The odometry the node publishes is the base's, so a
    mounting other than the recording's tilts and shifts every pose."""
    found = source.camera_mount(settings.base_frame_id)
    if found is None:
        say(f"replay: camera mounting from the params (camera_to_base_xyz "
            f"{_rounded(settings.camera_to_base_xyz)} m, camera_to_base_rpy "
            f"{_rounded(settings.camera_to_base_rpy)} rad): bag {source.path} has no static "
            f"transform from '{settings.base_frame_id}' to its camera")
        return settings
    T_base_cam, where = found
    mounted = settings.with_camera_mount(T_base_cam)
    say(f"replay: camera mounting from {where}: camera_to_base_xyz "
        f"{_rounded(mounted.camera_to_base_xyz)} m, camera_to_base_rpy "
        f"{_rounded(mounted.camera_to_base_rpy)} rad")
    return mounted


def _rounded(values: tuple[float, ...]) -> list[float]:
    return [round(v, 4) + 0.0 for v in values]


class _CameraInfos:
    """The bag's CameraInfo messages; a frame takes the one with its header stamp, else the latest
    received before it, else the first one."""

    def __init__(self) -> None:
        self._by_stamp: dict[int, tuple[Any, bytes]] = {}
        self._by_log: list[tuple[int, Any, bytes]] = []

    def add(self, stamp_ns: int, log_ns: int, msg: Any, cdr: bytes) -> None:
        self._by_stamp[stamp_ns] = (msg, cdr)
        self._by_log.append((log_ns, msg, cdr))

    def for_frame(self, stamp_ns: int, log_ns: int) -> tuple[Any, bytes] | None:
        if stamp_ns in self._by_stamp:
            return self._by_stamp[stamp_ns]
        if not self._by_log:
            return None
        at = bisect.bisect_right(self._by_log, log_ns, key=lambda entry: entry[0])
        _, msg, cdr = self._by_log[max(at - 1, 0)]      # bag order: receive times ascend
        return msg, cdr
