"""One pass over a ROS 2 bag (MCAP or sqlite3, read with rosbags' AnyReader): where every message of
the wanted topics is (receive time and header stamp, not the pixels) and the values of the small
messages (poses, steering angles, replay diagnostics). Later reads fetch single frames by time.

Messages without a header (``std_msgs/Float32`` steering) are given the header stamp of the stamped
message of the same bag received closest to them (:func:`stamp_by_receive_time`): the node publishes
all outputs of one camera frame together, and a recorder or the in-process replay logs them together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from unified_perception.data.stamps import match_nearest
from unified_perception.eval.report_errors import EvaluationError
from unified_perception.transforms import make_transform, quaternion_to_matrix


@dataclass(frozen=True)
class TopicIndex:
    """Messages of one topic in header-stamp order. ``values`` holds decoded small messages."""

    topic: str
    msgtype: str
    stamp_ns: np.ndarray            # [N] int64 header stamp (receive time where there is no header)
    log_ns: np.ndarray              # [N] int64 bag receive time
    has_header: bool
    values: list[Any] = field(default_factory=list)   # [N] decoded values, empty for images


def resolve_bag_dir(path: Path, role: str) -> Path:
    """The bag folder for ``path`` (the folder itself or one of its storage files)."""
    path = Path(path)
    if not path.exists():
        raise EvaluationError(f"{role} bag not found: {path}. Give the folder that `ros2 bag record` "
                              f"or `unified-perception replay/synth` wrote")
    if path.is_file() and (path.parent / "metadata.yaml").is_file():
        return path.parent
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise EvaluationError(f"{role} bag {path} has no metadata.yaml: give the bag folder that "
                              f"`ros2 bag record` wrote (it holds metadata.yaml and the .mcap/.db3)")
    return path


def header_stamp_ns(msg: Any, log_ns: int) -> int:
    """The header stamp of ``msg`` in ns, or its receive time ``log_ns`` if it has no header."""
    header = getattr(msg, "header", None)
    if header is None:
        return int(log_ns)
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def pose_of(msg: Any) -> np.ndarray:
    """``[4, 4] float64`` pose of a nav_msgs/Odometry or geometry_msgs/Pose(WithCovariance)Stamped."""
    pose = msg.pose.pose if hasattr(msg.pose, "pose") else msg.pose
    q, p = pose.orientation, pose.position
    return make_transform(quaternion_to_matrix(q.x, q.y, q.z, q.w), [p.x, p.y, p.z])


def key_values(msg: Any) -> dict[str, str]:
    """The ``key -> value`` pairs of the first status of a diagnostic_msgs/DiagnosticArray."""
    if not msg.status:
        return {}
    return {kv.key: kv.value for kv in msg.status[0].values}


def field_value(msg: Any, dotted: str) -> Any:
    """The field at a dotted path, e.g. ``drive.steering_angle``."""
    return reduce(getattr, dotted.split("."), msg)


def stamp_by_receive_time(log_ns: np.ndarray, ref_log_ns: np.ndarray, ref_stamp_ns: np.ndarray
                          ) -> np.ndarray:
    """Header stamps for messages without a header: the stamp of the reference message received
    closest in time. ``log_ns [M]``; ``ref_log_ns``, ``ref_stamp_ns [R] int64`` -> ``[M] int64``.
    Without references the receive times themselves are returned."""
    if ref_log_ns.size == 0:
        return np.asarray(log_ns, dtype=np.int64)
    order = np.argsort(ref_log_ns, kind="stable")
    nearest = match_nearest(ref_log_ns[order], log_ns, np.iinfo(np.int64).max // 2)
    return ref_stamp_ns[order][nearest]


class BagIndex:
    """An open bag, its topics, and the index of the topics asked for.

    Args:
        path: bag folder (or one of its storage files).
        role: ``"prediction"`` or ``"ground-truth"``, for messages.

    :meth:`build_index` then scans the topics asked for once.
    """

    def __init__(self, path: Path, role: str) -> None:
        self.role = role
        self.path = resolve_bag_dir(path, role)
        self._reader = self._open()
        self.msgtypes: dict[str, str] = {c.topic: c.msgtype for c in self._reader.connections}
        self.index: dict[str, TopicIndex] = {}

    def build_index(self, topics: Iterable[str], decoders: dict[str, Any] | None = None) -> None:
        """Index ``topics`` (those the bag lacks are skipped) in one pass; ``decoders`` maps a topic
        to ``function(msg) -> value`` for small messages whose values are kept."""
        self.index = self._scan([t for t in dict.fromkeys(topics) if t in self.msgtypes],
                                decoders or {})

    def _open(self) -> Any:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore
        try:
            reader = AnyReader([self.path], default_typestore=get_typestore(Stores.LATEST))
            reader.open()
        except Exception as err:  # rosbags raises many unrelated types for unreadable bags
            raise self._unreadable(err) from None
        return reader

    def _unreadable(self, err: Exception) -> EvaluationError:
        return EvaluationError(f"cannot read the {self.role} bag {self.path}: {str(err).rstrip('.')}. "
                               f"Check that it "
                               f"is a complete ROS 2 bag (MCAP or sqlite3); re-record it if it was "
                               f"cut short")

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> "BagIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _scan(self, topics: list[str], decoders: dict[str, Any]) -> dict[str, TopicIndex]:
        rows: dict[str, tuple[list[int], list[int], list[Any]]] = {t: ([], [], []) for t in topics}
        headers = dict.fromkeys(topics, True)
        connections = [c for c in self._reader.connections if c.topic in rows]
        for conn, log_ns, msg in self.messages(connections) if connections else ():
            stamps, logs, values = rows[conn.topic]
            headers[conn.topic] = hasattr(msg, "header")
            stamps.append(header_stamp_ns(msg, log_ns))
            logs.append(int(log_ns))
            if conn.topic in decoders:
                values.append(self._decode(decoders[conn.topic], conn.topic, msg))
        index = {}
        for topic, (stamps, logs, values) in rows.items():
            stamp_arr, log_arr = np.asarray(stamps, dtype=np.int64), np.asarray(logs, dtype=np.int64)
            order = np.argsort(stamp_arr, kind="stable")
            index[topic] = TopicIndex(topic, self.msgtypes[topic], stamp_arr[order], log_arr[order],
                                      headers[topic], [values[i] for i in order] if values else [])
        return index

    def _decode(self, decoder: Any, topic: str, msg: Any) -> Any:
        try:
            return decoder(msg)
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise EvaluationError(f"{self.role} bag {self.path}: message on '{topic}' "
                                  f"({self.msgtypes[topic]}) cannot be read: {err}") from None

    def connections(self) -> list[Any]:
        """The bag's rosbags connections (one per topic and type)."""
        return list(self._reader.connections)

    def messages(self, connections: list[Any], start: int | None = None, stop: int | None = None
                 ) -> Iterable[tuple[Any, int, Any]]:
        """``(connection, receive time ns, deserialised message)`` in receive order."""
        try:
            for conn, log_ns, raw in self._reader.messages(connections=connections, start=start,
                                                           stop=stop):
                yield conn, log_ns, self._reader.deserialize(raw, conn.msgtype)
        except EvaluationError:
            raise
        except Exception as err:  # a truncated chunk or a broken record deep in rosbags
            raise self._unreadable(err) from None

    def fetch(self, wanted: dict[str, tuple[int, int]]) -> dict[str, Any]:
        """Messages ``{topic: msg}`` for ``{topic: (receive time ns, header stamp ns)}``."""
        if not wanted:
            return {}
        logs = [log for log, _ in wanted.values()]
        connections = [c for c in self._reader.connections if c.topic in wanted]
        found: dict[str, Any] = {}
        for conn, log_ns, msg in self.messages(connections, min(logs), max(logs) + 1):
            log_want, stamp_want = wanted[conn.topic]
            if log_ns == log_want and header_stamp_ns(msg, log_ns) == stamp_want \
                    and conn.topic not in found:
                found[conn.topic] = msg
        return found

    def restamped(self, topic: str, references: Iterable[str]) -> TopicIndex:
        """The index of ``topic`` where headerless messages carry the header stamp of the message of
        the ``references`` topics received closest to them (see :func:`stamp_by_receive_time`)."""
        ix = self.index[topic]
        if ix.has_header:
            return ix
        stamped = [self.index[t] for t in references if t in self.index and self.index[t].has_header]
        ref_log = np.concatenate([r.log_ns for r in stamped]) if stamped else np.zeros(0, np.int64)
        ref_stamp = np.concatenate([r.stamp_ns for r in stamped]) if stamped else np.zeros(0, np.int64)
        stamps = stamp_by_receive_time(ix.log_ns, ref_log, ref_stamp)
        order = np.argsort(stamps, kind="stable")
        return TopicIndex(ix.topic, ix.msgtype, stamps[order], ix.log_ns[order], False,
                          [ix.values[i] for i in order] if ix.values else [])
