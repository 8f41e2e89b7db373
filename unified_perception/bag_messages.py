"""ROS 2 messages as rosbags typestore classes, for writing bags without rclpy.

The synthetic world's ground truth (``sim/``) and offline replay's predictions (``eval/``) are both
built here, with the layouts the node publishes (``topics.py`` encodings, ``ros/builders.py`` field
conventions), so a bag looks the same whoever wrote it. Stamps are integer nanoseconds since the
epoch; transforms ``[4, 4] float64`` with ``T_parent_child`` mapping child into parent coordinates.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from rosbags.typesys import Stores, get_typestore

from unified_perception.runtime.camera_info import camera_info_fields
from unified_perception.runtime.image_codec import encode_array
from unified_perception.runtime.markers import STEERING_MARKER_NS, steering_arrow
from unified_perception.runtime.scene_flow import FLOW_CLOUD_FIELDS, pack_flow_cloud
from unified_perception.transforms import rotation_to_quaternion

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
T = TYPESTORE.types

def serialize(message: Any) -> bytes:
    """CDR bytes of a rosbags message, as a ROS 2 bag stores them."""
    return bytes(TYPESTORE.serialize_cdr(message, message.__msgtype__))


def time_msg(ns: int) -> Any:
    return T["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def header(ns: int, frame_id: str) -> Any:
    return T["std_msgs/msg/Header"](stamp=time_msg(ns), frame_id=frame_id)


def image(array: np.ndarray, encoding: str, ns: int, frame_id: str) -> Any:
    """``sensor_msgs/Image`` of ``array`` ``[H, W]`` or ``[H, W, C]`` in ``encoding`` (little endian),
    packed by the same codec as the node's outputs."""
    packed = encode_array(array, encoding)
    return T["sensor_msgs/msg/Image"](
        header=header(ns, frame_id), height=packed.height, width=packed.width, encoding=encoding,
        is_bigendian=0, step=packed.step, data=np.frombuffer(packed.data, dtype=np.uint8))


def camera_info(K: np.ndarray, height: int, width: int, ns: int, frame_id: str,
                source: Any | None = None) -> Any:
    """``sensor_msgs/CameraInfo`` with 3x3 intrinsics ``K`` (px) and ``P = [K | 0]``; the
    distortion of ``source`` (an input CameraInfo) carries over, without one the camera is
    undistorted (:func:`runtime.camera_info.camera_info_fields`).
    """
    f = camera_info_fields(K, source)
    roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                do_rectify=False)
    return T["sensor_msgs/msg/CameraInfo"](
        header=header(ns, frame_id), height=int(height), width=int(width),
        distortion_model=f.distortion_model, d=f.d, k=f.k, r=f.r, p=f.p, binning_x=0, binning_y=0,
        roi=roi)


def vector3(xyz: Sequence[float]) -> Any:
    return T["geometry_msgs/msg/Vector3"](x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def _quaternion(R: np.ndarray) -> Any:
    x, y, z, w = rotation_to_quaternion(R)
    return T["geometry_msgs/msg/Quaternion"](x=float(x), y=float(y), z=float(z), w=float(w))


def pose(T_parent_child: np.ndarray) -> Any:
    """``geometry_msgs/Pose`` of a ``[4, 4]`` transform."""
    p = T_parent_child[:3, 3]
    return T["geometry_msgs/msg/Pose"](
        position=T["geometry_msgs/msg/Point"](x=float(p[0]), y=float(p[1]), z=float(p[2])),
        orientation=_quaternion(T_parent_child[:3, :3]))


def tf_message(T_parent_child: np.ndarray, parent: str, child: str, ns: int) -> Any:
    """``tf2_msgs/TFMessage`` with one transform ``parent -> child``."""
    transform = T["geometry_msgs/msg/Transform"](translation=vector3(T_parent_child[:3, 3]),
                                                 rotation=_quaternion(T_parent_child[:3, :3]))
    stamped = T["geometry_msgs/msg/TransformStamped"](
        header=header(ns, parent), child_frame_id=child, transform=transform)
    return T["tf2_msgs/msg/TFMessage"](transforms=[stamped])


def odometry(T_odom_base: np.ndarray, linear_mps: Sequence[float], angular_rps: Sequence[float],
             ns: int, odom_frame: str, base_frame: str) -> Any:
    """``nav_msgs/Odometry``: pose of ``base_frame`` in ``odom_frame``; twist (m/s, rad/s) in
    ``base_frame`` as REP 105 / nav_msgs specify; zero covariances."""
    twist = T["geometry_msgs/msg/Twist"](linear=vector3(linear_mps), angular=vector3(angular_rps))
    return T["nav_msgs/msg/Odometry"](
        header=header(ns, odom_frame), child_frame_id=base_frame,
        pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=pose(T_odom_base),
                                                       covariance=np.zeros(36)),
        twist=T["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)))


def float32(value: float) -> Any:
    return T["std_msgs/msg/Float32"](data=float(value))


def flow_cloud(xyz_m: np.ndarray, velocity_mps: np.ndarray, ns: int, frame_id: str) -> Any:
    """Unorganised ``sensor_msgs/PointCloud2`` with the float32 fields of
    :func:`runtime.scene_flow.pack_flow_cloud` (x, y, z in m; vx, vy, vz in m/s).

    ``xyz_m``, ``velocity_mps``: ``[M, 3]`` in ``frame_id``.
    """
    cloud = pack_flow_cloud(xyz_m, velocity_mps)
    field = T["sensor_msgs/msg/PointField"]
    return T["sensor_msgs/msg/PointCloud2"](
        header=header(ns, frame_id), height=1, width=cloud.width,
        fields=[field(name=n, offset=o, datatype=field.FLOAT32, count=1)
                for n, o in zip(FLOW_CLOUD_FIELDS, cloud.offsets)],
        is_bigendian=False, point_step=cloud.point_step, row_step=cloud.row_step,
        data=np.frombuffer(cloud.data, dtype=np.uint8), is_dense=cloud.is_dense)


def steering_marker(angle_rad: float, held: bool, ns: int, base_frame: str) -> Any:
    """``visualization_msgs/Marker``: the steering arrow of :func:`runtime.markers.steering_arrow`."""
    arrow = steering_arrow(angle_rad, held)
    point = T["geometry_msgs/msg/Point"]
    marker = T["visualization_msgs/msg/Marker"]
    return marker(
        header=header(ns, base_frame), ns=STEERING_MARKER_NS, id=0, type=marker.ARROW,
        action=marker.ADD, pose=pose(np.eye(4)), scale=vector3(arrow.scale_xyz_m),
        color=T["std_msgs/msg/ColorRGBA"](r=arrow.rgba[0], g=arrow.rgba[1], b=arrow.rgba[2],
                                           a=arrow.rgba[3]),
        lifetime=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=0), frame_locked=True,
        points=[point(x=0.0, y=0.0, z=0.0),
                point(x=float(arrow.tip_xy_m[0]), y=float(arrow.tip_xy_m[1]), z=0.0)],
        colors=[], texture_resource="",
        texture=T["sensor_msgs/msg/CompressedImage"](header=header(0, ""), format="",
                                                     data=np.zeros(0, np.uint8)),
        uv_coordinates=[], text="", mesh_resource="",
        mesh_file=T["visualization_msgs/msg/MeshFile"](filename="", data=np.zeros(0, np.uint8)),
        mesh_use_embedded_materials=False)


def diagnostics(name: str, values: Mapping[str, str], ns: int, message: str = "",
                hardware_id: str = "") -> Any:
    """``diagnostic_msgs/DiagnosticArray`` with one OK status ``name`` holding ``values``."""
    status = T["diagnostic_msgs/msg/DiagnosticStatus"]
    key_value = T["diagnostic_msgs/msg/KeyValue"]
    return T["diagnostic_msgs/msg/DiagnosticArray"](header=header(ns, ""), status=[status(
        level=status.OK, name=name, message=message, hardware_id=hardware_id,
        values=[key_value(key=k, value=str(v)) for k, v in values.items()])])


def clock(ns: int) -> Any:
    """``rosgraph_msgs/Clock`` at ``ns``."""
    return T["rosgraph_msgs/msg/Clock"](clock=time_msg(ns))
