"""Prediction bags for evaluation tests, built from a ground-truth bag itself (no model needed).

Each ``/gt/<output>`` message is copied to the node's output topic (``/camera/<output>`` per camera,
``/odometry``, ``/steering/angle``) with the same type and stamp, optionally edited first; a
``/replay/latency`` message per camera frame and a ``/replay/summary`` make it look exactly like
what ``unified-perception replay`` writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from rosbags.highlevel import AnyReader

from unified_perception import bag_messages as bm
from unified_perception import topics
from unified_perception.bag_output import bag_writer, qos
from unified_perception.eval.bag_index import header_stamp_ns, pose_of
from unified_perception.runtime.image_codec import decode_array

CAMERA_TOPIC = f"/{topics.SIM_CAMERA}/{topics.CAMERA_IMAGE}"
LATENCY_TOPIC, SUMMARY_TOPIC = topics.REPLAY_LATENCY.name, topics.REPLAY_SUMMARY.name

Edit = Callable[[Any], Any]


def output_topic(spec: topics.TopicSpec) -> str:
    return f"/{topics.SIM_CAMERA}/{spec.name}" if spec.per_camera else f"/{spec.name}"


GT_TO_OUTPUT: dict[str, tuple[str, topics.TopicSpec]] = {
    topics.gt_topic(spec): (output_topic(spec), spec) for spec in topics.GT_TOPICS}


def edit_image(change: Callable[[np.ndarray], np.ndarray]) -> Edit:
    """An edit of an Image message: ``change`` maps the decoded array to the new one."""
    def apply(msg: Any) -> Any:
        array = change(decode_array(msg).copy())
        return bm.image(array, msg.encoding, header_stamp_ns(msg, 0), msg.header.frame_id)
    return apply


def edit_steering(change: Callable[[float], float]) -> Edit:
    return lambda msg: bm.float32(change(float(msg.data)))


def edit_pose(change: Callable[[np.ndarray], np.ndarray]) -> Edit:
    """An edit of an Odometry message: ``change`` maps ``T_odom_base [4, 4]`` to the new pose."""
    def apply(msg: Any) -> Any:
        return bm.odometry(change(pose_of(msg)), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0),
                           header_stamp_ns(msg, 0), msg.header.frame_id, msg.child_frame_id)
    return apply


def _shifted(msg: Any, shift_ns: int) -> Any:
    if shift_ns and hasattr(msg, "header"):
        msg.header = bm.header(header_stamp_ns(msg, 0) + shift_ns, msg.header.frame_id)
    return msg


def write_prediction_bag(gt_bag: Path, out: Path, *, edits: Mapping[str, Edit] | None = None,
                         leave_out: Sequence[str] = (), skip_frames: int = 0, shift_ns: int = 0,
                         latency_ms: Callable[[int], float] | None = lambda i: 10.0 + i,
                         receive_delay_ns: Mapping[str, int] | None = None,
                         lost: Mapping[str, Sequence[int]] | None = None) -> Path:
    """Write a prediction bag at ``out`` from the ground truth of ``gt_bag``.

    Args:
        edits: output name (``depth``, ``steering/angle``, ...) -> edit of its message.
        leave_out: output names not written at all.
        skip_frames: the first frames get no output at all (as if dropped).
        shift_ns: added to every stamp and receive time (no frame in common when large).
        latency_ms: ``frame index -> latency`` for ``/replay/latency`` (None: no latency topic).
        receive_delay_ns: output name (or ``latency``) -> how long after its stamp a message is
            logged, as a live recorder receives it (headers keep the camera stamp).
        lost: output name -> frame indices whose message of that output is not written (lost on
            the way while the frame's other outputs arrived).
    """
    edits = dict(edits or {})
    delay = dict(receive_delay_ns or {})
    frames_in = frames_out = 0
    with AnyReader([gt_bag], default_typestore=bm.TYPESTORE) as reader, bag_writer(out) as writer:
        wanted = [c for c in reader.connections
                  if c.topic == CAMERA_TOPIC or (c.topic in GT_TO_OUTPUT
                                                 and GT_TO_OUTPUT[c.topic][1].name not in leave_out)]
        replay = [(LATENCY_TOPIC, "diagnostic_msgs/msg/DiagnosticArray")] if latency_ms else []
        replay.append((SUMMARY_TOPIC, "diagnostic_msgs/msg/DiagnosticArray"))
        outputs = [GT_TO_OUTPUT[c.topic] for c in wanted if c.topic != CAMERA_TOPIC]
        connections = {topic: writer.add_connection(topic, msgtype, typestore=bm.TYPESTORE,
                                                    offered_qos_profiles=[qos()])
                       for topic, msgtype in [(t, s.msg_type) for t, s in outputs] + replay}
        frame_of_log: dict[int, int] = {}
        last_ns = 0
        for conn, log_ns, raw in reader.messages(connections=wanted):
            if conn.topic == CAMERA_TOPIC:
                frame_of_log[log_ns] = frames_in
                frames_in += 1
                if frames_in <= skip_frames:
                    continue
                frames_out += 1
                if latency_ms is not None:
                    status = bm.diagnostics("replay", {"latency_ms": f"{latency_ms(frames_in - 1)}",
                                                       "mode": "offline"}, log_ns + shift_ns)
                    writer.write(connections[LATENCY_TOPIC], log_ns + shift_ns + delay.get("latency", 0),
                                 bm.serialize(status))
                continue
            if frame_of_log.get(log_ns, 0) < skip_frames:
                continue
            topic, spec = GT_TO_OUTPUT[conn.topic]
            if frame_of_log.get(log_ns, -1) in (lost or {}).get(spec.name, ()):
                continue
            msg = reader.deserialize(raw, conn.msgtype)
            if spec.name in edits:
                msg = edits[spec.name](msg)
            writer.write(connections[topic], log_ns + shift_ns + delay.get(spec.name, 0),
                         bm.serialize(_shifted(msg, shift_ns)))
            last_ns = log_ns + shift_ns
        summary = bm.diagnostics("replay", {"frames_in": frames_in, "frames_out": frames_out,
                                            "dropped": frames_in - frames_out, "mode": "offline",
                                            "model": "ground-truth copy", "rate": 1.0}, last_ns)
        writer.write(connections[SUMMARY_TOPIC], last_ns, bm.serialize(summary))
    return out


def read_gt_images(gt_bag: Path, name: str) -> list[np.ndarray]:
    """Decoded ``/gt/<name>`` images of a bag, in stamp order."""
    with AnyReader([gt_bag], default_typestore=bm.TYPESTORE) as reader:
        conns = [c for c in reader.connections if c.topic == f"{topics.GT_PREFIX}/{name}"]
        return [decode_array(reader.deserialize(raw, c.msgtype)).copy()
                for c, _, raw in reader.messages(connections=conns)]


def read_gt_values(gt_bag: Path, name: str, value: Callable[[Any], Any]) -> list[Any]:
    """``value(msg)`` of every ``/gt/<name>`` message, in receive order."""
    with AnyReader([gt_bag], default_typestore=bm.TYPESTORE) as reader:
        conns = [c for c in reader.connections if c.topic == f"{topics.GT_PREFIX}/{name}"]
        return [value(reader.deserialize(raw, c.msgtype)) for c, _, raw in reader.messages(connections=conns)]
