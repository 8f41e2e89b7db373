"""Build ROS 2 messages (rosbags typestore classes) from a :class:`SimFrame`.

Encodings and types follow :mod:`unified_perception.topics` so that ground truth looks exactly like
the node's outputs. No rclpy: the messages are rosbags dataclasses, serialised to CDR by the writer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_typestore

from unified_perception import topics
from unified_perception.runtime.image_codec import encode_array
from unified_perception.sim.world import SimFrame
from unified_perception.transforms import rotation_to_quaternion

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
T = TYPESTORE.types

CAMERA_FRAME = topics.SIM_OPTICAL_FRAME
BASE_FRAME = topics.BASE_FRAME
ODOM_FRAME = topics.ODOM_FRAME


def stamp_ns(frame: SimFrame) -> int:
    """The frame's stamp in integer nanoseconds."""
    return int(round(frame.stamp_s * 1e9))


def header(ns: int, frame_id: str) -> Any:
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000),
        frame_id=frame_id)


def image(array: np.ndarray, encoding: str, ns: int, frame_id: str = CAMERA_FRAME) -> Any:
    """``sensor_msgs/Image`` of ``array`` ``[H, W]`` or ``[H, W, C]`` in ``encoding`` (little endian),
    packed by the same codec as the node's outputs."""
    packed = encode_array(array, encoding)
    return T["sensor_msgs/msg/Image"](
        header=header(ns, frame_id), height=packed.height, width=packed.width, encoding=encoding,
        is_bigendian=0, step=packed.step, data=np.frombuffer(packed.data, dtype=np.uint8))


def camera_info(K: np.ndarray, height: int, width: int, ns: int, frame_id: str = CAMERA_FRAME) -> Any:
    """``sensor_msgs/CameraInfo`` of an undistorted pinhole camera."""
    P = np.zeros((3, 4))
    P[:, :3] = K
    roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                do_rectify=False)
    return T["sensor_msgs/msg/CameraInfo"](
        header=header(ns, frame_id), height=height, width=width, distortion_model="plumb_bob",
        d=np.zeros(5), k=K.astype(np.float64).reshape(-1), r=np.eye(3).reshape(-1),
        p=P.reshape(-1), binning_x=0, binning_y=0, roi=roi)


def _transform(T_parent_child: np.ndarray) -> Any:
    x, y, z, w = rotation_to_quaternion(T_parent_child[:3, :3])
    t = T_parent_child[:3, 3]
    return T["geometry_msgs/msg/Transform"](
        translation=T["geometry_msgs/msg/Vector3"](x=float(t[0]), y=float(t[1]), z=float(t[2])),
        rotation=T["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w))


def tf_message(T_parent_child: np.ndarray, parent: str, child: str, ns: int) -> Any:
    """``tf2_msgs/TFMessage`` with one transform ``parent -> child``."""
    stamped = T["geometry_msgs/msg/TransformStamped"](
        header=header(ns, parent), child_frame_id=child, transform=_transform(T_parent_child))
    return T["tf2_msgs/msg/TFMessage"](transforms=[stamped])


def odometry(frame: SimFrame, ns: int) -> Any:
    """``nav_msgs/Odometry`` odom -> base_link with the twist in base_link."""
    x, y, z, w = rotation_to_quaternion(frame.T_odom_base[:3, :3])
    p = frame.T_odom_base[:3, 3]
    vec = T["geometry_msgs/msg/Vector3"]
    pose = T["geometry_msgs/msg/Pose"](
        position=T["geometry_msgs/msg/Point"](x=float(p[0]), y=float(p[1]), z=float(p[2])),
        orientation=T["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w))
    twist = T["geometry_msgs/msg/Twist"](linear=vec(x=frame.speed_mps, y=0.0, z=0.0),
                                         angular=vec(x=0.0, y=0.0, z=frame.yaw_rate_rps))
    return T["nav_msgs/msg/Odometry"](
        header=header(ns, ODOM_FRAME), child_frame_id=BASE_FRAME,
        pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
        twist=T["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)))


def float32(value: float) -> Any:
    return T["std_msgs/msg/Float32"](data=float(value))
