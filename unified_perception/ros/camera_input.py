"""Camera inputs: per camera the newest frame waiting for inference and the latest CameraInfo.

Subscription callbacks (executor thread) only store the message; the inference worker takes the
newest frame of every camera at once. A frame replaced before the worker took it is reported to
``on_dropped``. No decoding happens here, so the executor thread stays free. Where rclpy offers it,
images arrive serialized (:class:`ros.received.SerializedCameraMessage`: no Python message object,
no copy of the pixels); the worker reads them (``ros.received.read_camera_message``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import rclpy.subscription
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from unified_perception.ros.event_callbacks import quiet_subscription
from unified_perception.ros.received import SerializedCameraMessage, subscribes_raw
from unified_perception.topics import CAMERA_IMAGE, CAMERA_IMAGE_COMPRESSED, CAMERA_INFO, camera_topic

SENSOR_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1, reliability=qos_profile_sensor_data.reliability,
    durability=qos_profile_sensor_data.durability)
"""Sensor-data QoS (best effort, volatile) with keep-last 1: the newest frame wins."""


@dataclass(frozen=True)
class PendingFrame:
    """One received camera message waiting for inference."""

    camera: str
    camera_index: int
    msg: Any                    # sensor_msgs/Image or /CompressedImage, or SerializedCameraMessage
    info: CameraInfo | None     # latest CameraInfo of that camera when the frame was taken
    received_s: float           # time.monotonic() when the middleware received the message
    taken_s: float              # time.monotonic() when its subscription callback ran


class CameraInputs:
    """Newest-frame slots for the cameras, shared by the executor and the worker thread."""

    def __init__(self, cameras: Sequence[str], on_dropped: Callable[[int], None]) -> None:
        self.cameras = tuple(cameras)
        self._on_dropped = on_dropped
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._frames: dict[str, tuple[Any, float, float]] = {}   # camera -> msg, received, taken
        self._infos: dict[str, CameraInfo] = {}
        self._received = 0

    def offer_frame(self, camera: str, msg: Any, in_middleware_s: float = 0.0) -> None:
        """Store the newest frame of ``camera``; a frame still waiting is replaced and dropped.
        ``in_middleware_s``: how long before this call the middleware received it (s)."""
        taken_s = time.monotonic()
        with self._lock:
            self._received += 1
            replaced = camera in self._frames
            self._frames[camera] = (msg, taken_s - in_middleware_s, taken_s)
            self._ready.notify()
        if replaced:
            self._on_dropped(1)

    def offer_info(self, camera: str, info: CameraInfo) -> None:
        with self._lock:
            self._infos[camera] = info

    def take(self, timeout_s: float, batch_window_s: float = 0.0) -> list[PendingFrame]:
        """Wait up to ``timeout_s`` for frames; return and clear the newest one of every camera.

        Once a frame is waiting, wait up to ``batch_window_s`` after its arrival for the other
        cameras' frames, so that unsynchronised cameras still share one batched inference call.
        """
        with self._lock:
            if not self._frames:
                self._ready.wait(timeout_s)
            if self._frames and batch_window_s > 0.0:
                first_s = min(taken_s for _, _, taken_s in self._frames.values())
                while len(self._frames) < len(self.cameras):
                    left_s = first_s + batch_window_s - time.monotonic()
                    if left_s <= 0.0 or not self._ready.wait(left_s):
                        break
            frames = []
            for index, cam in enumerate(self.cameras):
                if cam in self._frames:
                    msg, received_s, taken_s = self._frames[cam]
                    frames.append(PendingFrame(cam, index, msg, self._infos.get(cam), received_s,
                                               taken_s))
            self._frames.clear()
            return frames

    def wake(self) -> None:
        """Wake a waiting :meth:`take` (used when stopping)."""
        with self._lock:
            self._ready.notify_all()

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()

    @property
    def received(self) -> int:
        """Frames received since configure (processed, dropped or invalid)."""
        with self._lock:
            return self._received


def subscribe(node: Node, inputs: CameraInputs, transport: str) -> list[Any]:
    """Create the image and camera_info subscriptions of every camera; returns them. The images
    are taken serialized where rclpy can (``raw=True``), as messages otherwise."""
    compressed = transport == "compressed"
    image_type, image_name = ((CompressedImage, CAMERA_IMAGE_COMPRESSED) if compressed
                              else (Image, CAMERA_IMAGE))
    raw = subscribes_raw(node)
    taken_as = {"raw": True} if raw else {}     # rclpy without ``raw`` takes no such keyword
    subscriptions = []
    for camera in inputs.cameras:
        subscriptions.append(node.create_subscription(
            image_type, camera_topic(camera, image_name),
            _frame_callback(_bind(inputs.offer_frame, camera), raw, compressed), SENSOR_QOS,
            event_callbacks=quiet_subscription(), **taken_as))
        subscriptions.append(node.create_subscription(
            CameraInfo, camera_topic(camera, CAMERA_INFO), _bind(inputs.offer_info, camera),
            SENSOR_QOS, event_callbacks=quiet_subscription()))
    return subscriptions


MESSAGE_INFO = getattr(rclpy.subscription, "MessageInfo", None) is not None
"""Whether subscription callbacks can take the message's ``MessageInfo`` as a second argument
(rclpy since Iron): then the frame's time in the middleware before the callback is known."""


MAX_IN_MIDDLEWARE_S = 10.0
"""A receipt time further back than this is not taken as one: it comes from another clock (a
middleware that stamps with a steady clock) or a clock step, not from the executor's delay."""


def in_middleware_s(info: Any) -> float:
    """Seconds from the middleware's receipt of a message (``info['received_timestamp']``, ns of
    the system clock) to now; 0 where the middleware reports none or an implausible one."""
    received_ns = info.get("received_timestamp", 0) if info else 0
    if received_ns <= 0:
        return 0.0
    waited_s = max(time.time() - received_ns * 1e-9, 0.0)
    return waited_s if waited_s <= MAX_IN_MIDDLEWARE_S else 0.0


def _bind(method: Callable[..., None], camera: str) -> Callable[..., None]:
    return lambda msg, *waited: method(camera, msg, *waited)


def _frame_callback(offer: Callable[..., None], raw: bool, compressed: bool) -> Callable[..., None]:
    """The image subscription's callback: ``offer`` the message (wrapped as a
    :class:`SerializedCameraMessage` when taken ``raw``), with its time in the middleware where
    rclpy passes the ``MessageInfo``."""
    def message(msg: Any) -> Any:
        return SerializedCameraMessage(msg, compressed) if raw else msg

    if MESSAGE_INFO:
        return lambda msg, info: offer(message(msg), in_middleware_s(info))
    return lambda msg: offer(message(msg))
