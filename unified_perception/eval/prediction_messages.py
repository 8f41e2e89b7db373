"""The node's output messages for one inference result, as rosbags messages (offline replay).

Mirrors what the node publishes for a frame (``ros/camera_outputs.py`` and ``ros/vehicle.py``):
the same runtime functions compute the values, :mod:`unified_perception.bag_messages` lays them
out. Two-frame outputs (motion mask, scene flow and its cloud, odometry) exist only for a valid
frame pair, as on the node. Every message is stamped with the camera frame's stamp ``ns``.
Only finite results (``FrameResult.finite``) are turned into messages: like the node, the replay
drops a frame whose model outputs hold NaN / Inf before anything is derived from it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from unified_perception import bag_messages as bm
from unified_perception import topics
from unified_perception.runtime.colorize import colorize_semantic
from unified_perception.runtime.engine import FrameResult
from unified_perception.runtime.postprocess import instances_u16, motion_mask
from unified_perception.runtime.scene_flow import scene_flow_points
from unified_perception.runtime.steering import SteeringOutput
from unified_perception.runtime.vehicle_state import OdometryStep


class OutputMessage(NamedTuple):
    """One output message and the topic spec it is published under."""

    spec: topics.TopicSpec
    msg: Any


def camera_messages(result: FrameResult, ns: int, frame_id: str, K: np.ndarray, palette: np.ndarray,
                    motion_threshold: float, cloud_stride: int,
                    source_info: Any | None = None) -> list[OutputMessage]:
    """Per-camera outputs of ``result`` (a finite one; raises ``ValueError`` otherwise).

    ``K``: ``[3, 3]`` at the output size; ``palette``: ``[256, 3] uint8``; ``source_info``: the
    input's CameraInfo, whose distortion carries over to ``depth/camera_info``.
    """
    if not result.finite:
        raise ValueError(f"frame {ns} of camera '{result.camera}': outputs not finite "
                         f"({', '.join(result.non_finite)}); drop the frame, publish nothing of it")
    out: list[OutputMessage] = []

    def add(spec: topics.TopicSpec, values: np.ndarray) -> None:
        out.append(OutputMessage(spec, bm.image(values, spec.encoding, ns, frame_id)))

    if result.depth_m is not None:
        add(topics.DEPTH, result.depth_m)
        h, w = result.depth_m.shape
        out.append(OutputMessage(topics.DEPTH_INFO, bm.camera_info(K, h, w, ns, frame_id, source_info)))
    if result.semantic is not None:
        add(topics.SEMANTIC, result.semantic)
        add(topics.SEMANTIC_COLOR, colorize_semantic(result.semantic, palette))
    if result.instances is not None:
        add(topics.INSTANCES, instances_u16(result.instances))
    if result.panoptic is not None:
        add(topics.PANOPTIC, result.panoptic)
    if not result.pair_valid:
        return out
    if result.motion_prob is not None:
        add(topics.MOTION_MASK, motion_mask(result.motion_prob, motion_threshold))
    if result.scene_flow_m is not None:
        add(topics.SCENE_FLOW, result.scene_flow_m)
        if result.depth_m is not None and result.dt_s:
            xyz, velocity = scene_flow_points(result.depth_m, result.scene_flow_m, K, result.dt_s,
                                              cloud_stride)
            out.append(OutputMessage(topics.SCENE_FLOW_POINTS,
                                     bm.flow_cloud(xyz, velocity, ns, frame_id)))
    return out


def vehicle_messages(odometry: OdometryStep | None, steering: SteeringOutput | None, ns: int,
                     odom_frame: str, base_frame: str) -> list[OutputMessage]:
    """Odometry (when the pair gave a step) and the steering angle + marker (when finite)."""
    out: list[OutputMessage] = []
    if odometry is not None:
        out.append(OutputMessage(topics.ODOMETRY, bm.odometry(
            odometry.T_odom_base, odometry.linear_mps, odometry.angular_rps, ns, odom_frame,
            base_frame)))
    if steering is not None and np.isfinite(steering.angle_rad):
        out.append(OutputMessage(topics.STEERING_ANGLE, bm.float32(steering.angle_rad)))
        out.append(OutputMessage(topics.STEERING_MARKER, bm.steering_marker(
            steering.angle_rad, steering.held, ns, base_frame)))
    return out
