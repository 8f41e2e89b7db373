"""The prediction bag: what the node publishes for a replayed bag, plus the replay's timing.

Layout (``--out NAME`` -> ``NAME/metadata.yaml`` + ``NAME/NAME_0.mcap``, as ``ros2 bag record``):

* the node's outputs with their real types (``topics.py``), for camera ``<c>``:
  ``/<c>/depth``, ``/<c>/depth/camera_info``, ``/<c>/semantic``, ``/<c>/semantic/color``,
  ``/<c>/instances``, ``/<c>/panoptic``, ``/<c>/motion_mask``, ``/<c>/scene_flow``,
  ``/<c>/scene_flow/points``, ``/odometry``, ``/steering/angle``, ``/steering/marker``. Every
  message is logged at the stamp of the camera frame it came from (the headerless
  ``/steering/angle`` too). ``/path`` (it grows with the square of the length), ``/tf`` and
  ``/diagnostics`` are not recorded.
* ``/replay/latency`` (``diagnostic_msgs/DiagnosticArray``): one per processed frame, stamped with
  it; ``status[0].name == "replay"``, values ``latency_ms`` and ``mode`` (offline | live).
* ``/replay/summary`` (same type): once at the end, values ``frames_in``, ``frames_out``,
  ``dropped``, ``mode``, ``model``, ``rate`` and ``output <name>`` (messages recorded per output,
  e.g. ``output semantic``).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from rosbags.rosbag2 import Writer

from unified_perception import bag_messages as bm
from unified_perception import topics
from unified_perception.bag_output import bag_writer, qos

RECORDED_OUTPUTS: tuple[topics.TopicSpec, ...] = (
    topics.DEPTH, topics.DEPTH_INFO, topics.SEMANTIC, topics.SEMANTIC_COLOR, topics.INSTANCES,
    topics.PANOPTIC, topics.MOTION_MASK, topics.SCENE_FLOW, topics.SCENE_FLOW_POINTS,
    topics.ODOMETRY, topics.STEERING_ANGLE, topics.STEERING_MARKER)
"""The node outputs a prediction bag holds."""

STATUS_NAME = "replay"

TWO_FRAME_OUTPUTS = frozenset(spec.name for spec in (
    topics.MOTION_MASK, topics.SCENE_FLOW, topics.SCENE_FLOW_POINTS, topics.ODOMETRY))
"""Outputs of a frame PAIR: the first frame the node runs has none (no previous frame)."""


def short_outputs(per_output: Mapping[str, int], frames_out: int) -> dict[str, int]:
    """Outputs present in fewer frames than expected -> their frame count. A single-frame output
    is expected for every frame with outputs; :data:`TWO_FRAME_OUTPUTS` only for frames with a
    previous frame (not the first, nor one where the pair restarted), which the bag cannot tell,
    so they are checked against each other: each is expected as often as the most frequent."""
    pair_frames = max((n for name, n in per_output.items() if name in TWO_FRAME_OUTPUTS), default=0)
    return {name: n for name, n in per_output.items()
            if n < (pair_frames if name in TWO_FRAME_OUTPUTS else frames_out)}


def short_outputs_text(per_output: Mapping[str, int], frames_out: int) -> str:
    """``; semantic in 97, instances in 95 frames only`` for the :func:`short_outputs` ("" when
    every output came as often as expected)."""
    short = short_outputs(per_output, frames_out)
    if not short:
        return ""
    return "; " + ", ".join(f"{name} in {n}" for name, n in short.items()) + " frames only"


def output_topic(spec: topics.TopicSpec, camera: str) -> str:
    """Absolute topic of an output: ``/<camera>/<name>`` per camera, ``/<name>`` otherwise."""
    name = topics.camera_topic(camera, spec.name) if spec.per_camera else spec.name
    return "/" + name.lstrip("/")


@dataclass(frozen=True)
class ReplayCounts:
    """Frames published into the model (``frames_in``), frames with at least one output
    (``frames_out``) and, per output name (``semantic``, ``odometry``, ...), the frames that have
    it (``per_output``; outputs the model lacks are left out). An output short of what
    :func:`short_outputs` expects was published for fewer frames or lost on the way: its metrics
    cover only those frames."""

    frames_in: int
    frames_out: int
    per_output: Mapping[str, int] = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return self.frames_in - self.frames_out

    def describe(self) -> str:
        """``100 frames in, 100 with outputs, 0 dropped`` (+ :func:`short_outputs_text`)."""
        return (f"{self.frames_in} frames in, {self.frames_out} with outputs, {self.dropped} dropped"
                + short_outputs_text(self.per_output, self.frames_out))


class PredictionBag:
    """Writes output messages (CDR bytes) and the replay topics into an open rosbags writer."""

    def __init__(self, writer: Writer, camera: str, mode: str) -> None:
        self._writer = writer
        self.mode = mode
        self.topics = {spec: output_topic(spec, camera) for spec in RECORDED_OUTPUTS}
        specs = [*RECORDED_OUTPUTS, topics.REPLAY_LATENCY, topics.REPLAY_SUMMARY]
        self._connections = {
            output_topic(spec, camera): writer.add_connection(
                output_topic(spec, camera), spec.msg_type, typestore=bm.TYPESTORE,
                offered_qos_profiles=[qos()])
            for spec in specs}
        self.counts = {topic: 0 for topic in self._connections}
        """Messages written per topic."""

    def write(self, topic: str, stamp_ns: int, cdr: bytes) -> None:
        """One serialised message on ``topic``, logged at the camera frame's stamp."""
        self._writer.write(self._connections[topic], stamp_ns, cdr)
        self.counts[topic] += 1

    def write_message(self, spec: topics.TopicSpec, stamp_ns: int, msg: Any) -> None:
        """A rosbags message of output ``spec``."""
        self.write(self.topics[spec], stamp_ns, bm.serialize(msg))

    def write_latency(self, stamp_ns: int, latency_ms: float) -> None:
        msg = bm.diagnostics(STATUS_NAME, {"latency_ms": f"{latency_ms:.3f}", "mode": self.mode},
                             stamp_ns)
        self.write(topics.REPLAY_LATENCY.name, stamp_ns, bm.serialize(msg))

    def output_counts(self) -> dict[str, int]:
        """Messages written per output name (``semantic``, ``odometry``, ...); outputs never
        written (tasks the model lacks) are left out."""
        return {spec.name: self.counts[topic] for spec, topic in self.topics.items()
                if self.counts[topic]}

    def write_summary(self, stamp_ns: int, counts: ReplayCounts, model: str, rate: str) -> None:
        values = {"frames_in": counts.frames_in, "frames_out": counts.frames_out,
                  "dropped": counts.dropped, "mode": self.mode, "model": model, "rate": rate,
                  **{f"output {name}": n for name, n in counts.per_output.items()}}
        self.write(topics.REPLAY_SUMMARY.name, stamp_ns,
                   bm.serialize(bm.diagnostics(STATUS_NAME, values, stamp_ns)))


@contextmanager
def open_prediction_bag(path: str | Path, camera: str, mode: str,
                        storage: str = "mcap") -> Iterator[PredictionBag]:
    """A :class:`PredictionBag` at ``path``; the folder appears only when the block succeeds."""
    with bag_writer(path, storage) as writer:
        yield PredictionBag(writer, camera, mode)
