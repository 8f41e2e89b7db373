"""Live replay's recorder: subscribes to every output topic of the node and writes what arrives.

Subscriptions are raw: each message arrives as its CDR bytes and goes into the prediction bag as
is, logged at its header stamp (the camera frame's stamp, read from the bytes). Nothing is
deserialised or serialised again, so the recorder keeps up with 13 topics while the node takes
most of the CPU (with deserialising callbacks a busy 2-core machine lost images from the node's
short reliable output queues). ``steering/angle`` (``std_msgs/Float32``) has no
header: the node publishes it together with ``steering/marker`` of the same command, so the k-th
angle is logged at the stamp of the k-th marker. The receive time (monotonic) of the last output
of each stamp is kept for the latency.
"""

from __future__ import annotations

import importlib
import struct
import threading
import time
from collections import deque
from typing import Any, Callable

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from unified_perception import topics
from unified_perception.eval.prediction_bag import PredictionBag

RECORD_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
"""Reliable with a deep queue: the recorder must not lose what the node published."""


def rclpy_class(msg_type: str) -> Any:
    """The rclpy message class of ``pkg/msg/Name``."""
    package, _, name = msg_type.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


CDR_HEADER_BYTES = 4
"""The encapsulation header in front of every serialised message; its second byte is 1 for
little-endian CDR, 0 for big-endian."""


def cdr_header_stamp_ns(cdr: bytes) -> int:
    """The ``header.stamp`` (ns) of a serialised message whose first field is a
    ``std_msgs/Header`` (its ``builtin_interfaces/Time``: int32 sec, uint32 nanosec, right after
    the encapsulation header)."""
    if len(cdr) < CDR_HEADER_BYTES + 8:
        raise ValueError(f"a serialised message of {len(cdr)} bytes has no header stamp")
    order = "<" if cdr[1] & 1 else ">"
    sec, nanosec = struct.unpack_from(order + "iI", cdr, CDR_HEADER_BYTES)
    return sec * 1_000_000_000 + nanosec


class OutputRecorder:
    """Subscriptions on ``node`` for every output topic of ``bag``; writes into ``bag``.

    Callbacks run on the executor thread; the other methods may be called from any thread.
    """

    def __init__(self, node: Node, bag: PredictionBag) -> None:
        self._bag = bag
        self._lock = threading.Lock()
        self._angles: deque[bytes] = deque()
        self._marker_stamps: deque[int] = deque()
        self._received_s: dict[int, float] = {}
        self.last_receive_s = time.monotonic()
        self.subscriptions = [
            node.create_subscription(rclpy_class(spec.msg_type), topic, self._callback(spec, topic),
                                     RECORD_QOS, raw=True)
            for spec, topic in bag.topics.items()]

    def connected(self) -> bool:
        """True when every output topic has a publisher (the node is configured)."""
        return all(sub.get_publisher_count() > 0 for sub in self.subscriptions)

    def received(self) -> dict[int, float]:
        """Stamp (ns) -> monotonic receive time (s) of the last output with that stamp."""
        with self._lock:
            return dict(self._received_s)

    def _callback(self, spec: topics.TopicSpec, topic: str) -> Callable[[Any], None]:
        def store(data: bytes) -> None:
            now_s = time.monotonic()
            with self._lock:
                self.last_receive_s = now_s
                if spec is topics.STEERING_ANGLE:
                    self._angles.append(data)
                else:
                    ns = cdr_header_stamp_ns(data)
                    self._bag.write(topic, ns, data)
                    self._received_s[ns] = now_s
                    if spec is topics.STEERING_MARKER:
                        self._marker_stamps.append(ns)
                self._pair_steering()
        return store

    def _pair_steering(self) -> None:
        angle_topic = self._bag.topics[topics.STEERING_ANGLE]
        while self._angles and self._marker_stamps:
            self._bag.write(angle_topic, self._marker_stamps.popleft(), self._angles.popleft())
