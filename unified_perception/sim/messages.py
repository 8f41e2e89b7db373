"""Build ROS 2 messages (rosbags typestore classes) from a :class:`SimFrame`.

Encodings and types follow :mod:`unified_perception.topics` so that ground truth looks exactly like
the node's outputs; the field layouts are the shared ones of :mod:`unified_perception.bag_messages`.
No rclpy: the messages are rosbags dataclasses, serialised to CDR by the writer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from unified_perception import bag_messages, topics
from unified_perception.bag_messages import TYPESTORE, float32, tf_message  # noqa: F401 (re-exported)
from unified_perception.sim.world import SimFrame

CAMERA_FRAME = topics.SIM_OPTICAL_FRAME
BASE_FRAME = topics.BASE_FRAME
ODOM_FRAME = topics.ODOM_FRAME


def stamp_ns(frame: SimFrame) -> int:
    """The frame's stamp in integer nanoseconds."""
    return int(round(frame.stamp_s * 1e9))


def image(array: np.ndarray, encoding: str, ns: int, frame_id: str = CAMERA_FRAME) -> Any:
    """``sensor_msgs/Image`` in the simulated camera's optical frame."""
    return bag_messages.image(array, encoding, ns, frame_id)


def camera_info(K: np.ndarray, height: int, width: int, ns: int, frame_id: str = CAMERA_FRAME) -> Any:
    """``sensor_msgs/CameraInfo`` of the (undistorted pinhole) simulated camera."""
    return bag_messages.camera_info(K, height, width, ns, frame_id)


def odometry(frame: SimFrame, ns: int) -> Any:
    """``nav_msgs/Odometry`` odom -> base_link with the twist in base_link."""
    return bag_messages.odometry(frame.T_odom_base, (frame.speed_mps, 0.0, 0.0),
                                 (0.0, 0.0, frame.yaw_rate_rps), ns, ODOM_FRAME, BASE_FRAME)
