"""Write rendered frames into a real ROS 2 bag (MCAP or sqlite3) with the rosbags library.

``--out NAME`` gives the folder ``NAME/`` with ``metadata.yaml`` and ``NAME_0.mcap``, as
``ros2 bag record -o NAME`` does (:mod:`unified_perception.bag_output`); a failed run leaves no bag.

Topics: ``/camera/image_raw`` (rgb8), ``/camera/camera_info``, ``/gt/<name>`` for every spec in
:data:`unified_perception.topics.GT_TOPICS` (type and encoding as listed there), ``/tf_static``
(base_link -> camera_optical_frame, transient local) and ``/tf`` (odom -> base_link). The simulation
config is stored as JSON in the bag's metadata (``custom_data``, key :data:`CONFIG_KEY`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from rosbags.interfaces import QosDurability
from tqdm import tqdm

from unified_perception import topics
from unified_perception.bag_output import BagOutputError, bag_writer, check_output, qos
from unified_perception.sim import messages as msgs
from unified_perception.sim.world import SimFrame

CONFIG_KEY = "unified_perception.sim_config"
IMAGE_TOPIC = f"/{topics.SIM_CAMERA}/{topics.CAMERA_IMAGE}"
INFO_TOPIC = f"/{topics.SIM_CAMERA}/{topics.CAMERA_INFO}"


class BagWriteError(RuntimeError):
    """The bag cannot be written (e.g. the output exists). The message says what to do."""


def _gt_payload(frame: SimFrame, name: str) -> np.ndarray | float:
    """The frame field carried by ground-truth topic ``name``, already in its encoding's layout."""
    return {
        topics.DEPTH.name: lambda: frame.depth_m,
        topics.SEMANTIC.name: lambda: frame.semantic,
        topics.INSTANCES.name: lambda: frame.instances.astype(np.uint16),
        topics.PANOPTIC.name: lambda: frame.panoptic,
        topics.MOTION_MASK.name: lambda: frame.motion_mask.astype(np.uint8) * np.uint8(255),
        topics.SCENE_FLOW.name: lambda: frame.scene_flow_m,
        topics.STEERING_ANGLE.name: lambda: frame.steering_rad,
    }[name]()


def _gt_message(frame: SimFrame, spec: topics.TopicSpec, ns: int) -> Any:
    if spec.msg_type == "sensor_msgs/msg/Image":
        return msgs.image(_gt_payload(frame, spec.name), spec.encoding, ns)
    if spec.msg_type == "nav_msgs/msg/Odometry":
        return msgs.odometry(frame, ns)
    if spec.msg_type == "std_msgs/msg/Float32":
        return msgs.float32(_gt_payload(frame, spec.name))
    raise BagWriteError(f"no ground truth for topic spec {spec.name} ({spec.msg_type}) in the simulator")


@dataclass(frozen=True)
class BagSummary:
    path: Path
    frames: int
    topics: dict[str, str]       # topic -> message type
    first_stamp_s: float
    last_stamp_s: float


def write_bag(path: str | Path, frames: Iterable[SimFrame], *, storage: str = "mcap",
              config_json: dict[str, Any] | None = None, total: int | None = None,
              progress: bool = True) -> BagSummary:
    """Write ``frames`` into a new bag directory ``path`` (``path/<name>_0.mcap``).

    Raises :class:`BagWriteError` if it exists or cannot be created; a failure leaves no bag.
    """
    try:
        path = check_output(path, storage)
    except BagOutputError as err:
        raise BagWriteError(str(err)) from None
    serialize: Callable[[Any, str], bytes] = msgs.TYPESTORE.serialize_cdr
    specs = [(IMAGE_TOPIC, "sensor_msgs/msg/Image"), (INFO_TOPIC, "sensor_msgs/msg/CameraInfo")]
    specs += [(topics.gt_topic(spec), spec.msg_type) for spec in topics.GT_TOPICS]
    specs += [(topics.TF.name, "tf2_msgs/msg/TFMessage")]
    first = last = None
    count = 0
    with bag_writer(path, storage) as writer:
        if config_json is not None:
            writer.set_custom_data(CONFIG_KEY, json.dumps(config_json, sort_keys=True))
        conns = {topic: writer.add_connection(topic, msgtype, typestore=msgs.TYPESTORE,
                                              offered_qos_profiles=[qos(QosDurability.VOLATILE, 10)])
                 for topic, msgtype in specs}
        tf_static = writer.add_connection(topics.TF_STATIC.name, "tf2_msgs/msg/TFMessage", typestore=msgs.TYPESTORE,
                                          offered_qos_profiles=[qos(QosDurability.TRANSIENT_LOCAL, 1)])

        def put(topic: str, message: Any, ns: int) -> None:
            conn = conns[topic] if topic in conns else tf_static
            writer.write(conn, ns, serialize(message, conn.msgtype))

        for frame in tqdm(frames, total=total, desc="synth", unit="frame", disable=not progress):
            ns = msgs.stamp_ns(frame)
            if first is None:
                first = frame.stamp_s
                put(topics.TF_STATIC.name, msgs.tf_message(frame.T_base_cam, msgs.BASE_FRAME, msgs.CAMERA_FRAME, ns),
                    ns)
            last = frame.stamp_s
            h, w = frame.image_rgb.shape[:2]
            put(IMAGE_TOPIC, msgs.image(frame.image_rgb, "rgb8", ns), ns)
            put(INFO_TOPIC, msgs.camera_info(frame.K, h, w, ns), ns)
            for spec in topics.GT_TOPICS:
                put(topics.gt_topic(spec), _gt_message(frame, spec, ns), ns)
            put(topics.TF.name, msgs.tf_message(frame.T_odom_base, msgs.ODOM_FRAME, msgs.BASE_FRAME, ns), ns)
            count += 1
    all_topics = dict(specs) | {topics.TF_STATIC.name: "tf2_msgs/msg/TFMessage"}
    return BagSummary(path, count, all_topics, float(first or 0.0), float(last or 0.0))
