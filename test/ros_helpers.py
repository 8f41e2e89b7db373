"""Shared helpers for tests that talk to real ROS 2 nodes over Fast DDS (loopback, own domain).

test/conftest.py sets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a per-process ROS_DOMAIN_ID;
:func:`subprocess_env` hands both to child processes.
"""

from __future__ import annotations

import array
import os
import threading
import time
from collections import defaultdict
from typing import Any, Callable, Iterable

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

DEFAULT_TIMEOUT_S = 20.0


def subprocess_env() -> dict[str, str]:
    """The environment for a child ROS process: same domain, loopback discovery only."""
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"]
    env["ROS_DOMAIN_ID"] = os.environ["ROS_DOMAIN_ID"]
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def wait_until(predicate: Callable[[], Any], timeout_s: float = DEFAULT_TIMEOUT_S,
               what: str = "condition", poll_s: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class RosSession:
    """An rclpy context with an executor spinning its nodes in a background thread."""

    def __init__(self, args: list[str] | None = None) -> None:
        self.context = Context()
        rclpy.init(args=args, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # context shut down between the check and the call
                if self.context.ok():
                    raise

    def add(self, node: Node) -> Node:
        self.executor.add_node(node)
        return node

    def remove(self, node: Node) -> None:
        self.executor.remove_node(node)
        node.destroy_node()

    def close(self) -> None:
        for node in list(self.executor.get_nodes()):
            self.executor.remove_node(node)
            node.destroy_node()
        rclpy.shutdown(context=self.context)
        self._thread.join(5.0)


class Recorder:
    """Subscribes to topics and keeps every message received, thread-safely."""

    QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)

    def __init__(self, node: Node, topics: Iterable[tuple[str, Any]]) -> None:
        self._lock = threading.Lock()
        self._messages: dict[str, list[Any]] = defaultdict(list)
        self.subscriptions = [
            node.create_subscription(msg_type, name, self._store(name), self.QOS)
            for name, msg_type in topics]

    def _store(self, name: str) -> Callable[[Any], None]:
        def callback(msg: Any) -> None:
            with self._lock:
                self._messages[name].append(msg)
        return callback

    def messages(self, name: str) -> list[Any]:
        with self._lock:
            return list(self._messages[name])

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    def with_stamp(self, name: str, stamp: Time) -> list[Any]:
        return [m for m in self.messages(name) if m.header.stamp == stamp]

    def wait_for(self, name: str, predicate: Callable[[Any], bool] = lambda m: True,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
        """The first received message on ``name`` satisfying ``predicate`` (waits for it)."""
        return wait_until(lambda: next((m for m in self.messages(name) if predicate(m)), None),
                          timeout_s, f"a message on '{name}'")


def stamp_now(node: Node) -> Time:
    return node.get_clock().now().to_msg()


def camera_info(width: int, height: int, frame_id: str, fx: float = 100.0) -> CameraInfo:
    """A pinhole CameraInfo with the principal point at the image centre."""
    k = [fx, 0.0, (width - 1) / 2, 0.0, fx, (height - 1) / 2, 0.0, 0.0, 1.0]
    return CameraInfo(header=Header(frame_id=frame_id), width=width, height=height,
                      distortion_model="plumb_bob", d=[0.0] * 5, k=k,
                      r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                      p=[fx, 0.0, k[2], 0.0, 0.0, fx, k[5], 0.0, 0.0, 0.0, 1.0, 0.0])


def rgb_image(rgb: np.ndarray, stamp: Time, frame_id: str, encoding: str = "rgb8",
              pad: int = 0) -> Image:
    """``[H, W, 3] uint8`` RGB as an rgb8 (or bgr8) Image, rows padded by ``pad`` bytes."""
    pixels = rgb[..., ::-1] if encoding == "bgr8" else rgb
    rows = np.concatenate([pixels.reshape(rgb.shape[0], -1),
                           np.zeros((rgb.shape[0], pad), np.uint8)], axis=1)
    msg = Image(header=Header(stamp=stamp, frame_id=frame_id), height=rgb.shape[0],
                width=rgb.shape[1], encoding=encoding, is_bigendian=0, step=rows.shape[1])
    msg.data = array.array("B", np.ascontiguousarray(rows).tobytes())
    return msg


class CameraFeed:
    """Publishes frames and camera_info for one camera with sensor-data QoS."""

    def __init__(self, node: Node, camera: str, msg_type: Any = Image,
                 image_topic: str = "image_raw") -> None:
        self.node = node
        self.image_pub = node.create_publisher(msg_type, f"{camera}/{image_topic}",
                                               qos_profile_sensor_data)
        self.info_pub = node.create_publisher(CameraInfo, f"{camera}/camera_info",
                                              qos_profile_sensor_data)

    def wait_connected(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        wait_until(lambda: self.image_pub.get_subscription_count() > 0
                   and self.info_pub.get_subscription_count() > 0, timeout_s,
                   "the node to subscribe to the camera topics")

    def send(self, image: Any, info: CameraInfo | None = None) -> None:
        if info is not None:
            info.header.stamp = image.header.stamp
            self.info_pub.publish(info)
        self.image_pub.publish(image)


def call(node: Node, srv_type: Any, name: str, request: Any,
         timeout_s: float = DEFAULT_TIMEOUT_S, attempt_s: float = 2.0) -> Any:
    """Call a service from a node spun elsewhere and return the response.

    A request sent while the server was still being matched (a server that just started, or a
    stale discovery entry of one that just stopped) gets no reply: it is sent again every
    ``attempt_s`` until ``timeout_s``.
    """
    client = node.create_client(srv_type, name)
    deadline = time.monotonic() + timeout_s
    try:
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise AssertionError(f"service '{name}' is not available")
        while time.monotonic() < deadline:
            future = client.call_async(request)
            try:
                wait_until(future.done, min(attempt_s, max(deadline - time.monotonic(), 0.01)),
                           f"the reply of '{name}'")
                return future.result()
            except AssertionError:
                client.remove_pending_request(future)
        raise AssertionError(f"no reply from '{name}' within {timeout_s} s")
    finally:
        node.destroy_client(client)
