"""Message builders: numpy arrays and runtime results into the ROS messages the node publishes.

Conversions only (field names, REP 103/105 frame conventions); the maths that produces the values
lives in runtime/, and so do the field layouts shared with the rosbags builders of
``bag_messages.py`` (CameraInfo fields, the scene-flow cloud, the steering arrow). Every builder takes the ``Header`` of the camera frame the values came
from, so each output carries that frame's stamp.
"""

from __future__ import annotations

import array
from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import (
    Point, Pose, PoseStamped, Quaternion, Transform, TransformStamped, Vector3)
from nav_msgs.msg import Odometry, Path
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Float32, Header
from visualization_msgs.msg import Marker

from unified_perception.runtime.camera_info import camera_info_fields
from unified_perception.runtime.image_codec import encode_array
from unified_perception.runtime.markers import STEERING_MARKER_NS, steering_arrow
from unified_perception.runtime.scene_flow import FLOW_CLOUD_FIELDS, pack_flow_cloud
from unified_perception.transforms import rotation_to_quaternion

try:  # ackermann_msgs is not on every machine; the command topic exists only where it is
    from ackermann_msgs.msg import AckermannDriveStamped
except ImportError:  # pragma: no cover - depends on the installation
    AckermannDriveStamped = None

try:  # tf2_msgs comes with every ROS install but not with the PyPI wheels; /tf exists only where it is
    from tf2_msgs.msg import TFMessage
except ImportError:  # pragma: no cover - depends on the installation
    TFMessage = None


def header(stamp: Time, frame_id: str) -> Header:
    """A header with ``stamp`` (copied) and ``frame_id``."""
    return Header(stamp=Time(sec=stamp.sec, nanosec=stamp.nanosec), frame_id=frame_id)


def stamp_to_s(stamp: Time) -> float:
    """``builtin_interfaces/Time`` -> seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def s_to_stamp(seconds: float) -> Time:
    """Seconds -> ``builtin_interfaces/Time``."""
    sec = int(np.floor(seconds))
    return Time(sec=sec, nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


def image(values: np.ndarray, encoding: str, hdr: Header) -> Image:
    """``[H, W]`` or ``[H, W, C]`` array as a ``sensor_msgs/Image`` of ``encoding``."""
    packed = encode_array(values, encoding)
    msg = Image(header=hdr, height=packed.height, width=packed.width, encoding=packed.encoding,
                is_bigendian=0, step=packed.step)
    msg.data = array.array("B", packed.data)
    return msg


def camera_info(K: np.ndarray, size_hw: tuple[int, int], hdr: Header,
                source: CameraInfo | None = None) -> CameraInfo:
    """``CameraInfo`` of an image of ``size_hw`` with 3x3 intrinsics ``K`` (px), ``P = [K | 0]``;
    the distortion of ``source`` (the input's CameraInfo) carries over
    (:func:`runtime.camera_info.camera_info_fields`)."""
    f = camera_info_fields(K, source)
    return CameraInfo(header=hdr, height=int(size_hw[0]), width=int(size_hw[1]),
                      distortion_model=f.distortion_model, d=f.d.tolist(), k=f.k.tolist(),
                      r=f.r.tolist(), p=f.p.tolist())


def flow_cloud(xyz_m: np.ndarray, velocity_mps: np.ndarray, hdr: Header) -> PointCloud2:
    """Unorganised ``PointCloud2`` with float32 fields x, y, z (m) and vx, vy, vz (m/s).

    ``xyz_m``, ``velocity_mps``: ``[M, 3]`` in the frame of ``hdr``.
    """
    cloud = pack_flow_cloud(xyz_m, velocity_mps)
    msg = PointCloud2(
        header=hdr, height=1, width=cloud.width, is_bigendian=False, point_step=cloud.point_step,
        row_step=cloud.row_step, is_dense=cloud.is_dense,
        fields=[PointField(name=n, offset=o, datatype=PointField.FLOAT32, count=1)
                for n, o in zip(FLOW_CLOUD_FIELDS, cloud.offsets)])
    msg.data = array.array("B", cloud.data)
    return msg


def quaternion(R: np.ndarray) -> Quaternion:
    """Rotation matrix ``[3, 3]`` -> unit ``geometry_msgs/Quaternion`` (w >= 0)."""
    x, y, z, w = rotation_to_quaternion(R)
    return Quaternion(x=float(x), y=float(y), z=float(z), w=float(w))


def pose(T: np.ndarray) -> Pose:
    """Homogeneous ``[4, 4]`` transform -> ``geometry_msgs/Pose``."""
    T = np.asarray(T, dtype=np.float64)
    return Pose(position=Point(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
                orientation=quaternion(T[:3, :3]))


def odometry(T_odom_base: np.ndarray, linear_mps: Sequence[float], angular_rps: Sequence[float],
             hdr: Header, child_frame_id: str) -> Odometry:
    """``nav_msgs/Odometry``: pose of ``child_frame_id`` (base_link) in ``hdr.frame_id`` (odom);
    twist (m/s, rad/s) in the child frame, as REP 105 / nav_msgs specify."""
    msg = Odometry(header=hdr, child_frame_id=child_frame_id)
    msg.pose.pose = pose(T_odom_base)
    msg.twist.twist.linear = Vector3(x=float(linear_mps[0]), y=float(linear_mps[1]),
                                     z=float(linear_mps[2]))
    msg.twist.twist.angular = Vector3(x=float(angular_rps[0]), y=float(angular_rps[1]),
                                      z=float(angular_rps[2]))
    return msg


def transform_stamped(T_parent_child: np.ndarray, hdr: Header, child_frame_id: str
                      ) -> TransformStamped:
    """``geometry_msgs/TransformStamped`` of ``child_frame_id`` in ``hdr.frame_id`` (the parent).

    ``T_parent_child``: ``[4, 4]`` homogeneous, mapping child coordinates into the parent frame.
    """
    T = np.asarray(T_parent_child, dtype=np.float64)
    return TransformStamped(header=hdr, child_frame_id=child_frame_id, transform=Transform(
        translation=Vector3(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
        rotation=quaternion(T[:3, :3])))


def tf_message(transforms: Sequence[TransformStamped]):
    """``tf2_msgs/TFMessage`` of ``transforms`` (None where tf2_msgs is not installed)."""
    return None if TFMessage is None else TFMessage(transforms=list(transforms))


def path_pose(odom: Odometry) -> PoseStamped:
    """The pose of an Odometry message as a PoseStamped for ``nav_msgs/Path``."""
    return PoseStamped(header=odom.header, pose=odom.pose.pose)


def path(poses: Sequence[PoseStamped], hdr: Header) -> Path:
    return Path(header=hdr, poses=list(poses))


def float32(value: float) -> Float32:
    return Float32(data=float(value))


def steering_marker(angle_rad: float, held: bool, hdr: Header, length_m: float = 3.0) -> Marker:
    """An arrow in base_link from the origin along the steering direction (positive = left).

    Green while the command follows the network, amber while it is held by the watchdog
    (:func:`runtime.markers.steering_arrow`).
    """
    arrow = steering_arrow(angle_rad, held, length_m)
    msg = Marker(header=hdr, ns=STEERING_MARKER_NS, id=0, type=Marker.ARROW,
                 action=Marker.ADD, frame_locked=True)
    msg.points = [Point(x=0.0, y=0.0, z=0.0),
                  Point(x=float(arrow.tip_xy_m[0]), y=float(arrow.tip_xy_m[1]), z=0.0)]
    msg.pose.orientation.w = 1.0
    msg.scale = Vector3(x=arrow.scale_xyz_m[0], y=arrow.scale_xyz_m[1], z=arrow.scale_xyz_m[2])
    msg.color = ColorRGBA(r=arrow.rgba[0], g=arrow.rgba[1], b=arrow.rgba[2], a=arrow.rgba[3])
    return msg


def ackermann(angle_rad: float, hdr: Header):
    """``ackermann_msgs/AckermannDriveStamped`` with the steering angle only (None if unavailable)."""
    if AckermannDriveStamped is None:
        return None
    msg = AckermannDriveStamped(header=hdr)
    msg.drive.steering_angle = float(angle_rad)
    return msg


def diagnostics(name: str, hardware_id: str, level: bytes, message: str,
                values: dict[str, str], stamp: Time) -> DiagnosticArray:
    """One ``DiagnosticStatus`` in a ``DiagnosticArray`` (``level`` is DiagnosticStatus.OK/...)."""
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])
