"""Per-camera outputs of one inference result: images, the output CameraInfo and the flow cloud.

Each topic is built only when someone listens, into the frame's :class:`ros.publishers.Outbox`
(published in one burst once everything is built). Two-frame outputs (motion mask, scene flow)
only exist when the result's frame pair is valid. Everything is at the model's output size, with
the camera's intrinsics scaled to it (:func:`runtime.camera_info.output_intrinsics`).

The images, the CameraInfo and the cloud go out as serialized messages (:mod:`ros.serialized`)
where rclpy publishes bytes, as message objects (:mod:`ros.builders`) where it does not.
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from unified_perception import topics
from unified_perception.ros import builders, serialized
from unified_perception.ros.publishers import CameraPublishers, Outbox
from unified_perception.runtime.colorize import colorize_semantic
from unified_perception.runtime.engine import FrameResult
from unified_perception.runtime.postprocess import instances_u16, motion_mask
from unified_perception.runtime.scene_flow import scene_flow_points

MESSAGES = serialized if serialized.publishes_bytes() else builders
"""Where the per-camera messages come from: ``image``, ``camera_info`` and ``flow_cloud`` of
:mod:`ros.serialized` (bytes) or of :mod:`ros.builders` (message objects), same arguments."""


def add_camera_messages(outbox: Outbox, pubs: CameraPublishers, result: FrameResult, hdr: Header,
                        K: np.ndarray, palette: np.ndarray, motion_threshold: float,
                        cloud_stride: int, source_info: CameraInfo | None = None) -> None:
    """Build every per-camera output of ``result`` that has a subscriber, stamped with ``hdr``,
    into ``outbox`` (in topic order).

    ``K``: ``[3, 3]`` intrinsics at the output size; ``palette``: ``[256, 3] uint8`` class colours;
    ``source_info``: the input's CameraInfo (its distortion carries over to depth/camera_info).
    """
    add = outbox.add_if_wanted
    msgs = MESSAGES
    if result.depth_m is not None:
        add(pubs.depth, lambda: msgs.image(result.depth_m, topics.DEPTH.encoding, hdr))
        add(pubs.depth_info, lambda: msgs.camera_info(K, result.depth_m.shape, hdr, source_info))
    if result.semantic is not None:
        add(pubs.semantic, lambda: msgs.image(result.semantic, topics.SEMANTIC.encoding, hdr))
        add(pubs.semantic_color, lambda: msgs.image(
            colorize_semantic(result.semantic, palette), topics.SEMANTIC_COLOR.encoding, hdr))
    if result.instances is not None:
        add(pubs.instances, lambda: msgs.image(
            instances_u16(result.instances), topics.INSTANCES.encoding, hdr))
    if result.panoptic is not None:
        add(pubs.panoptic, lambda: msgs.image(result.panoptic, topics.PANOPTIC.encoding, hdr))
    if not result.pair_valid:
        return
    if result.motion_prob is not None:
        add(pubs.motion_mask, lambda: msgs.image(
            motion_mask(result.motion_prob, motion_threshold), topics.MOTION_MASK.encoding, hdr))
    if result.scene_flow_m is not None:
        add(pubs.scene_flow,
            lambda: msgs.image(result.scene_flow_m, topics.SCENE_FLOW.encoding, hdr))
        if result.depth_m is not None and result.dt_s:
            add(pubs.scene_flow_points, lambda: msgs.flow_cloud(
                *scene_flow_points(result.depth_m, result.scene_flow_m, K, result.dt_s,
                                   cloud_stride), hdr))
