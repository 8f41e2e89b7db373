"""Topic names, message types and encodings: one source of truth for the node, the synthetic bags and
evaluation. Pure Python (no rclpy), so sim/, data/ and eval/ can read it.

Naming:
* Camera inputs are ``<camera>/image_raw`` (or ``<camera>/image_raw/compressed``) and
  ``<camera>/camera_info``.
* Per-camera outputs are ``<camera>/<output>`` (e.g. ``front/depth``): each camera has its own
  images. Vehicle-level outputs (odometry, path, steering) come from the primary camera (the first
  in the list) and have no camera prefix.
* Ground truth in synthetic bags is ``/gt/<output>``, in the same message type and encoding as the
  node's output, so evaluation compares like with like.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    """A published topic: relative name, ROS message type, image encoding (images only)."""

    name: str
    msg_type: str
    encoding: str = ""
    per_camera: bool = True
    doc: str = ""


CAMERA_IMAGE = "image_raw"
CAMERA_IMAGE_COMPRESSED = "image_raw/compressed"
CAMERA_INFO = "camera_info"

DEPTH = TopicSpec("depth", "sensor_msgs/msg/Image", "32FC1", doc="metres along optical z (REP 118)")
DEPTH_INFO = TopicSpec("depth/camera_info", "sensor_msgs/msg/CameraInfo",
                       doc="intrinsics at the output size")
SEMANTIC = TopicSpec("semantic", "sensor_msgs/msg/Image", "mono8", doc="class id per pixel")
SEMANTIC_COLOR = TopicSpec("semantic/color", "sensor_msgs/msg/Image", "rgb8",
                           doc="class colours for viewing")
INSTANCES = TopicSpec("instances", "sensor_msgs/msg/Image", "16UC1", doc="instance id, 0 = none")
PANOPTIC = TopicSpec("panoptic", "sensor_msgs/msg/Image", "32SC1", doc="class * 1000 + instance")
MOTION_MASK = TopicSpec("motion_mask", "sensor_msgs/msg/Image", "mono8",
                        doc="255 = independently moving")
SCENE_FLOW = TopicSpec("scene_flow", "sensor_msgs/msg/Image", "32FC3",
                       doc="independent 3D motion t-1 -> t, m, optical frame of t")
SCENE_FLOW_POINTS = TopicSpec("scene_flow/points", "sensor_msgs/msg/PointCloud2",
                              doc="x, y, z (m), vx, vy, vz (m/s) in the optical frame")
ODOMETRY = TopicSpec("odometry", "nav_msgs/msg/Odometry", per_camera=False,
                     doc="odom -> base_link (REP 105), integrated ego-motion")
PATH = TopicSpec("path", "nav_msgs/msg/Path", per_camera=False, doc="odometry history")
STEERING_ANGLE = TopicSpec("steering/angle", "std_msgs/msg/Float32", per_camera=False,
                           doc="rad, positive left, after limits and smoothing")
STEERING_COMMAND = TopicSpec("steering/command", "ackermann_msgs/msg/AckermannDriveStamped",
                             per_camera=False, doc="only where ackermann_msgs is installed")
STEERING_MARKER = TopicSpec("steering/marker", "visualization_msgs/msg/Marker", per_camera=False,
                            doc="arrow in base_link for RViz")
DIAGNOSTICS = TopicSpec("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", per_camera=False)
TF = TopicSpec("/tf", "tf2_msgs/msg/TFMessage", per_camera=False,
               doc="odom -> base_link, where tf2_msgs is installed")
TF_STATIC = TopicSpec("/tf_static", "tf2_msgs/msg/TFMessage", per_camera=False,
                      doc="base_link -> primary camera optical frame, where tf2_msgs is installed")

OUTPUT_TOPICS: tuple[TopicSpec, ...] = (
    DEPTH, DEPTH_INFO, SEMANTIC, SEMANTIC_COLOR, INSTANCES, PANOPTIC, MOTION_MASK, SCENE_FLOW,
    SCENE_FLOW_POINTS, ODOMETRY, PATH, STEERING_ANGLE, STEERING_COMMAND, STEERING_MARKER,
    DIAGNOSTICS, TF, TF_STATIC)

REPLAY_LATENCY = TopicSpec(
    "/replay/latency", "diagnostic_msgs/msg/DiagnosticArray", per_camera=False,
    doc="one per processed camera frame, stamped with it; status[0] 'replay' with values "
        "latency_ms and mode (offline | live)")
REPLAY_SUMMARY = TopicSpec(
    "/replay/summary", "diagnostic_msgs/msg/DiagnosticArray", per_camera=False,
    doc="once at the end of a replay; status[0] 'replay' with values frames_in, frames_out, "
        "dropped, mode, model, rate")

CLOCK = TopicSpec("/clock", "rosgraph_msgs/msg/Clock", per_camera=False,
                  doc="simulated time the live replay publishes for use_sim_time")

GT_PREFIX = "/gt"
GT_TOPICS: tuple[TopicSpec, ...] = (
    DEPTH, SEMANTIC, INSTANCES, PANOPTIC, MOTION_MASK, SCENE_FLOW, ODOMETRY, STEERING_ANGLE)
"""Ground-truth topics a synthetic bag carries, as ``/gt/<name>``."""

BASE_FRAME = "base_link"
"""Default vehicle body frame id (REP 105)."""
ODOM_FRAME = "odom"
"""Default odometry frame id (REP 105)."""
SIM_OPTICAL_FRAME = "camera_optical_frame"
"""Optical frame id of the camera in synthetic bags."""

SIM_CAMERA = "camera"
"""Camera name used in synthetic bags: ``/camera/image_raw``, ``/camera/camera_info``."""


def camera_topic(camera: str, name: str) -> str:
    """``<camera>/<name>`` without a doubled or leading slash for relative names."""
    return f"{camera.strip('/')}/{name}" if camera else name


def gt_topic(spec: TopicSpec) -> str:
    """The ground-truth topic of an output, e.g. ``/gt/depth``."""
    return f"{GT_PREFIX}/{spec.name}"
