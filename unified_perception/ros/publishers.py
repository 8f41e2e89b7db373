"""The node's publishers, one lifecycle publisher per output topic of ``unified_perception.topics``.

Lifecycle publishers publish only while the node is active. :meth:`TopicPublisher.wanted` tells
whether anyone listens, so work only done for a topic (colouring, point clouds, serialisation)
is skipped when nobody does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry, Path
from rclpy.lifecycle import LifecycleNode
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Float32
from visualization_msgs.msg import Marker

from unified_perception import topics
from unified_perception.ros.builders import AckermannDriveStamped, TFMessage
from unified_perception.ros.event_callbacks import quiet_publisher

OUTPUT_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
"""Reliable, volatile, shallow: compatible with reliable and best-effort subscribers."""

_MSG_TYPES: dict[str, Any] = {
    "sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CameraInfo": CameraInfo,
    "sensor_msgs/msg/PointCloud2": PointCloud2, "nav_msgs/msg/Odometry": Odometry,
    "nav_msgs/msg/Path": Path, "std_msgs/msg/Float32": Float32,
    "visualization_msgs/msg/Marker": Marker, "diagnostic_msgs/msg/DiagnosticArray": DiagnosticArray,
    "ackermann_msgs/msg/AckermannDriveStamped": AckermannDriveStamped,
    "tf2_msgs/msg/TFMessage": TFMessage,
}
TF_STATIC_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""Latched, as tf2's static broadcaster does, so late subscribers get the camera mounting."""


class TopicPublisher:
    """A lifecycle publisher plus the check whether building its message is worth it."""

    def __init__(self, node: LifecycleNode, spec: topics.TopicSpec, name: str,
                 qos: QoSProfile = OUTPUT_QOS) -> None:
        self.spec = spec
        self.name = name
        self._pub = node.create_lifecycle_publisher(_MSG_TYPES[spec.msg_type], name, qos,
                                                    event_callbacks=quiet_publisher())

    def wanted(self) -> bool:
        """True when at least one subscriber listens."""
        return self._pub.get_subscription_count() > 0

    def publish(self, msg: Any) -> None:
        self._pub.publish(msg)

    def destroy(self, node: LifecycleNode) -> None:
        node.destroy_lifecycle_publisher(self._pub)


class Outbox:
    """Messages of one frame, built first and then published in one burst, in the order added.

    A subscriber woken by an early message takes CPU (and the node's cache) from building the
    later ones; built together and sent together, a frame's outputs also reach their listeners
    close in time.
    """

    def __init__(self) -> None:
        self.messages: list[tuple[TopicPublisher, Any]] = []

    def add(self, pub: TopicPublisher, msg: Any) -> None:
        self.messages.append((pub, msg))

    def add_if_wanted(self, pub: TopicPublisher, build: Callable[[], Any]) -> None:
        """Build the message only when someone listens to ``pub``."""
        if pub.wanted():
            self.messages.append((pub, build()))

    def publish(self) -> None:
        """Publish every message added, in order, then forget them."""
        messages, self.messages = self.messages, []
        for pub, msg in messages:
            pub.publish(msg)


@dataclass
class CameraPublishers:
    """Per-camera outputs, on ``<camera>/<output>``."""

    depth: TopicPublisher
    depth_info: TopicPublisher
    semantic: TopicPublisher
    semantic_color: TopicPublisher
    instances: TopicPublisher
    panoptic: TopicPublisher
    motion_mask: TopicPublisher
    scene_flow: TopicPublisher
    scene_flow_points: TopicPublisher


_CAMERA_SPECS = {
    "depth": topics.DEPTH, "depth_info": topics.DEPTH_INFO, "semantic": topics.SEMANTIC,
    "semantic_color": topics.SEMANTIC_COLOR, "instances": topics.INSTANCES,
    "panoptic": topics.PANOPTIC, "motion_mask": topics.MOTION_MASK,
    "scene_flow": topics.SCENE_FLOW, "scene_flow_points": topics.SCENE_FLOW_POINTS,
}


@dataclass
class VehiclePublishers:
    """Vehicle-level outputs (from the primary camera), without a camera prefix."""

    odometry: TopicPublisher
    path: TopicPublisher
    steering_angle: TopicPublisher
    steering_marker: TopicPublisher
    steering_command: TopicPublisher | None     # only where ackermann_msgs is installed
    tf: TopicPublisher | None = None            # only where tf2_msgs is installed and publish_tf
    tf_static: TopicPublisher | None = None


class OutputPublishers:
    """Every output publisher of the node; created at configure, destroyed at cleanup.

    ``/diagnostics`` is not among them: the node publishes it in every lifecycle state
    (``ros/diagnostics.py``) with :data:`OUTPUT_QOS`.
    """

    def __init__(self, node: LifecycleNode, cameras: tuple[str, ...], publish_tf: bool = True
                 ) -> None:
        self.cameras = {
            camera: CameraPublishers(**{
                field: TopicPublisher(node, spec, topics.camera_topic(camera, spec.name))
                for field, spec in _CAMERA_SPECS.items()})
            for camera in cameras}
        command = (TopicPublisher(node, topics.STEERING_COMMAND, topics.STEERING_COMMAND.name)
                   if AckermannDriveStamped is not None else None)
        self.vehicle = VehiclePublishers(
            odometry=TopicPublisher(node, topics.ODOMETRY, topics.ODOMETRY.name),
            path=TopicPublisher(node, topics.PATH, topics.PATH.name),
            steering_angle=TopicPublisher(node, topics.STEERING_ANGLE, topics.STEERING_ANGLE.name),
            steering_marker=TopicPublisher(node, topics.STEERING_MARKER,
                                           topics.STEERING_MARKER.name),
            steering_command=command)
        if publish_tf and TFMessage is not None:
            self.vehicle.tf = TopicPublisher(node, topics.TF, topics.TF.name)
            self.vehicle.tf_static = TopicPublisher(node, topics.TF_STATIC, topics.TF_STATIC.name,
                                                    TF_STATIC_QOS)

    def all(self) -> list[TopicPublisher]:
        pubs = [p for cam in self.cameras.values() for p in vars(cam).values()]
        return pubs + [p for p in vars(self.vehicle).values() if p is not None]

    def destroy(self, node: LifecycleNode) -> None:
        for pub in self.all():
            pub.destroy(node)
