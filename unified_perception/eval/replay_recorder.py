"""Live replay's recorder: subscribes to every output topic of the node and writes what arrives.

Each message is serialised with ``rclpy.serialization`` straight into the prediction bag, logged at
its header stamp (the camera frame's stamp). ``steering/angle`` (``std_msgs/Float32``) has no
header: the node publishes it together with ``steering/marker`` of the same command, so the k-th
angle is logged at the stamp of the k-th marker. The receive time (monotonic) of the last output
of each stamp is kept for the latency.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections import deque
from typing import Any, Callable

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message

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


def stamp_ns(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


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
                                     RECORD_QOS)
            for spec, topic in bag.topics.items()]

    def connected(self) -> bool:
        """True when every output topic has a publisher (the node is configured)."""
        return all(sub.get_publisher_count() > 0 for sub in self.subscriptions)

    def received(self) -> dict[int, float]:
        """Stamp (ns) -> monotonic receive time (s) of the last output with that stamp."""
        with self._lock:
            return dict(self._received_s)

    def _callback(self, spec: topics.TopicSpec, topic: str) -> Callable[[Any], None]:
        def store(msg: Any) -> None:
            now_s = time.monotonic()
            data = serialize_message(msg)
            with self._lock:
                self.last_receive_s = now_s
                if spec is topics.STEERING_ANGLE:
                    self._angles.append(data)
                else:
                    ns = stamp_ns(msg)
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
