"""A prediction bag's frames matched to a ground-truth bag's frames by header stamp.

Per-pixel topics (depth, semantic, instances, panoptic, motion mask, scene flow) are matched by
EXACT header stamp: the node stamps every output with the stamp of the camera frame it came from.
Poses and steering angles are matched to each other by nearest stamp within the topic map's
``match_tolerance_s``. Predictions are read from the node's output topics (``topics.py``) under the
namespace of the ground-truth bag's camera (``/camera/image_raw`` -> ``/camera/depth``), or from the
one topic of the right type ending in the output's name.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from unified_perception import topics
from unified_perception.data.resize import resize_nearest
from unified_perception.data.rosbag_topics import RosbagTopics, per_pixel_map
from unified_perception.data.stamps import NO_MATCH, match_exact, match_nearest
from unified_perception.eval.bag_index import BagIndex, TopicIndex, field_value, key_values, pose_of
from unified_perception.eval.prediction_bag import ReplayCounts
from unified_perception.eval.report_errors import EvaluationError
from unified_perception.runtime.image_codec import ImageDecodeError, decode_any_rgb, decode_array

IMAGE_SPECS: dict[str, topics.TopicSpec] = {spec.name: spec for spec in (
    topics.DEPTH, topics.SEMANTIC, topics.INSTANCES, topics.PANOPTIC, topics.MOTION_MASK,
    topics.SCENE_FLOW)}
"""Per-pixel outputs by key (the key is the output's topic name and the topic map's key)."""

REPLAY_LATENCY_TOPIC = topics.REPLAY_LATENCY.name
REPLAY_SUMMARY_TOPIC = topics.REPLAY_SUMMARY.name


@dataclass(frozen=True)
class FrameMaps:
    """Per-pixel outputs (or ground truth) of one frame at the ground truth's size; None = absent.

    depth ``[H, W] float32`` m (0 = no value); semantic ``[H, W] uint8`` class ids; instances
    ``[H, W] int32`` (0 = none); panoptic ``[H, W] int32`` class * 1000 + instance; motion_mask
    ``[H, W] bool`` (True = moving); scene_flow ``[H, W, 3] float32`` m, optical frame of t.
    """

    depth: np.ndarray | None = None
    semantic: np.ndarray | None = None
    instances: np.ndarray | None = None
    panoptic: np.ndarray | None = None
    motion_mask: np.ndarray | None = None
    scene_flow: np.ndarray | None = None


@dataclass(frozen=True)
class MatchedFrame:
    """One camera frame with the predictions and the ground truth stamped with it."""

    stamp_ns: int
    camera_rgb: np.ndarray | None   # [H, W, 3] uint8 from the ground-truth bag
    pred: FrameMaps
    gt: FrameMaps


@dataclass(frozen=True)
class PoseSeries:
    """Poses ``T_odom_base [N, 4, 4]`` at sorted stamps ``[N] int64`` ns."""

    stamp_ns: np.ndarray
    T: np.ndarray


@dataclass(frozen=True)
class ValueSeries:
    """Scalars ``[N] float64`` at sorted stamps ``[N] int64`` ns."""

    stamp_ns: np.ndarray
    values: np.ndarray


def camera_namespace(image_topic: str) -> str:
    """``/camera/image_raw`` (or ``.../image_raw/compressed``) -> ``/camera``."""
    for suffix in (topics.CAMERA_IMAGE_COMPRESSED, topics.CAMERA_IMAGE):
        if image_topic.endswith("/" + suffix):
            return image_topic[: -len(suffix) - 1]
    return image_topic.rsplit("/", 1)[0]


def find_output_topic(preferred: str, spec: topics.TopicSpec, available: Mapping[str, str]) -> str | None:
    """``preferred`` if the bag has it with the spec's type, else the one topic of that type whose
    name ends in the output's name (not a ground-truth topic), else None."""
    if available.get(preferred) == spec.msg_type:
        return preferred
    candidates = [t for t, msgtype in available.items()
                  if msgtype == spec.msg_type and t.endswith("/" + spec.name)
                  and not t.startswith(topics.GT_PREFIX + "/")]
    return candidates[0] if len(candidates) == 1 else None


def _latency_value(msg: Any) -> float:
    return float(key_values(msg)["latency_ms"])


class FramePairs:
    """Open a prediction and a ground-truth bag, index them and pair their frames.

    Args:
        pred_path, gt_path: bag folders.
        gt_topics: topic map of the ground-truth bag (defaults: the synthetic bags).

    Raises :class:`EvaluationError` for an unreadable bag, a ground-truth bag without ground truth,
    or bags without a frame in common.
    """

    def __init__(self, pred_path: Path, gt_path: Path, gt_topics: RosbagTopics) -> None:
        self.gt_topics = gt_topics
        self.gt = BagIndex(gt_path, "ground-truth")
        try:
            self.pred = BagIndex(pred_path, "prediction")
        except EvaluationError:
            self.gt.close()
            raise
        try:
            self._index_ground_truth()
            self._index_predictions()
            self.stamps_ns = self._match_frames()
        except EvaluationError:
            self.close()
            raise

    def close(self) -> None:
        self.gt.close()
        self.pred.close()

    def __enter__(self) -> "FramePairs":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- indexing -----------------------------------------------------------------------------

    def _index_ground_truth(self) -> None:
        t = self.gt_topics
        self.camera_topic = t.image if t.image in self.gt.msgtypes else None
        self.gt_image_topics = {key: getattr(t, key) for key in IMAGE_SPECS
                                if getattr(t, key) is not None and getattr(t, key) in self.gt.msgtypes}
        steering_field, scale = t.steering_field, t.steering_scale
        decoders = {}
        if t.odometry in self.gt.msgtypes:
            decoders[t.odometry] = pose_of
        if t.steering in self.gt.msgtypes:
            decoders[t.steering] = lambda msg: float(field_value(msg, steering_field)) * scale
        if not self.gt_image_topics and not decoders:
            wanted = ", ".join(str(getattr(t, k)) for k in (*IMAGE_SPECS, "odometry", "steering"))
            raise EvaluationError(
                f"ground-truth bag {self.gt.path} holds no ground-truth topic (looked for {wanted}; "
                f"it has {', '.join(sorted(self.gt.msgtypes)) or 'none'}). Give a bag written by "
                f"`unified-perception synth`, or a topic map (--topics) naming its ground truth")
        self.gt.build_index([*([self.camera_topic] if self.camera_topic else []),
                             *self.gt_image_topics.values(), *decoders], decoders)

    def _index_predictions(self) -> None:
        available = self.pred.msgtypes
        namespace = camera_namespace(self.gt_topics.image or "")
        self.pred_image_topics = {}
        for key, spec in IMAGE_SPECS.items():
            topic = find_output_topic(f"{namespace}/{spec.name}", spec, available)
            if topic is not None:
                self.pred_image_topics[key] = topic
        self.pred_odometry = find_output_topic("/" + topics.ODOMETRY.name, topics.ODOMETRY, available)
        self.pred_steering = find_output_topic("/" + topics.STEERING_ANGLE.name, topics.STEERING_ANGLE,
                                               available)
        decoders: dict[str, Any] = {}
        if self.pred_odometry:
            decoders[self.pred_odometry] = pose_of
        if self.pred_steering:
            decoders[self.pred_steering] = lambda msg: float(msg.data)
        if REPLAY_LATENCY_TOPIC in available:
            decoders[REPLAY_LATENCY_TOPIC] = _latency_value
        if REPLAY_SUMMARY_TOPIC in available:
            decoders[REPLAY_SUMMARY_TOPIC] = key_values
        self.pred.build_index([*self.pred_image_topics.values(), *decoders], decoders)

    def _gt_frame_stamps(self) -> np.ndarray:
        if self.camera_topic:
            return self.gt.index[self.camera_topic].stamp_ns
        stamps = [self.gt.index[t].stamp_ns for t in self.gt_image_topics.values()]
        stamps += [self._gt_series(t).stamp_ns for t in (self.gt_topics.odometry, self.gt_topics.steering)
                   if t in self.gt.index]
        return np.unique(np.concatenate(stamps)) if stamps else np.zeros(0, np.int64)

    def _gt_series(self, topic: str) -> TopicIndex:
        """A ground-truth series topic with stamps (headerless ones paired by receive time)."""
        return self.gt.restamped(topic, [self.camera_topic or "", *self.gt_image_topics.values(),
                                         self.gt_topics.odometry or ""])

    def _pred_per_frame_topics(self) -> list[str]:
        """Prediction topics with one stamped message per frame."""
        return [*self.pred_image_topics.values(),
                *(t for t in (self.pred_odometry, REPLAY_LATENCY_TOPIC) if t in self.pred.index)]

    def _pred_series(self, topic: str) -> TopicIndex:
        """A prediction series topic with stamps (headerless ones paired by receive time)."""
        return self.pred.restamped(topic, self._pred_per_frame_topics())

    def _match_frames(self) -> np.ndarray:
        per_frame = self._pred_per_frame_topics()
        if not per_frame and self.pred_steering not in self.pred.index:
            raise EvaluationError(
                f"prediction bag {self.pred.path} holds none of the node's output topics (it has "
                f"{', '.join(sorted(self.pred.msgtypes)) or 'none'}). Give the bag that "
                f"`unified-perception replay` wrote")
        pred_stamps = [self.pred.index[t].stamp_ns for t in per_frame]
        if self.pred_steering in self.pred.index:
            pred_stamps.append(self._pred_series(self.pred_steering).stamp_ns)
        self.gt_frame_stamps = self._gt_frame_stamps()
        matched = np.intersect1d(np.concatenate(pred_stamps), self.gt_frame_stamps)
        if matched.size == 0:
            raise EvaluationError(
                f"no frame in common: no output of the prediction bag {self.pred.path} (stamps "
                f"{_span(np.concatenate(pred_stamps))}) carries the stamp of a frame of the "
                f"ground-truth bag {self.gt.path} (stamps {_span(self.gt_frame_stamps)}). Evaluate "
                f"the predictions against the bag they were replayed from")
        return matched

    # -- counts and series --------------------------------------------------------------------

    def summary(self) -> dict[str, str]:
        """The values of the replay's summary message (empty if the bag has none)."""
        ix = self.pred.index.get(REPLAY_SUMMARY_TOPIC)
        return dict(ix.values[-1]) if ix is not None and ix.values else {}

    def counts(self) -> ReplayCounts:
        """Frames in: the ground truth's camera frames (else the replay summary's ``frames_in``,
        else the ground truth's distinct stamps); out: frames with at least one output."""
        frames_in = int(self.gt_frame_stamps.size)
        if not self.camera_topic and self.summary().get("frames_in", "").isdigit():
            frames_in = int(self.summary()["frames_in"])
        return ReplayCounts(max(frames_in, int(self.stamps_ns.size)), int(self.stamps_ns.size),
                            self._frames_per_output())

    def _frames_per_output(self) -> dict[str, int]:
        """Output name -> how many of the matched frames have it."""
        series = {key: self.pred.index[topic].stamp_ns for key, topic in self.pred_image_topics.items()}
        if self.pred_odometry in self.pred.index:
            series[topics.ODOMETRY.name] = self.pred.index[self.pred_odometry].stamp_ns
        if self.pred_steering in self.pred.index:
            series[topics.STEERING_ANGLE.name] = self._pred_series(self.pred_steering).stamp_ns
        return {key: int(np.isin(self.stamps_ns, stamps).sum()) for key, stamps in series.items()}

    def poses(self) -> tuple[PoseSeries, PoseSeries] | None:
        """Predicted and ground-truth poses at matched stamps, or None if either bag lacks them."""
        gt_topic = self.gt_topics.odometry
        if self.pred_odometry not in self.pred.index or gt_topic not in self.gt.index:
            return None
        pred, gt = self.pred.index[self.pred_odometry], self._gt_series(gt_topic)
        pairs = self._pair(pred, gt)
        if pairs is None:
            return None
        ip, ig = pairs
        return (PoseSeries(pred.stamp_ns[ip], np.stack([pred.values[i] for i in ip])),
                PoseSeries(gt.stamp_ns[ig], np.stack([gt.values[i] for i in ig])))

    def steering(self) -> tuple[ValueSeries, ValueSeries] | None:
        """Predicted and ground-truth angles (rad) at matched stamps, or None if either lacks them."""
        gt_topic = self.gt_topics.steering
        if self.pred_steering not in self.pred.index or gt_topic not in self.gt.index:
            return None
        pred, gt = self._pred_series(self.pred_steering), self._gt_series(gt_topic)
        pairs = self._pair(pred, gt)
        if pairs is None:
            return None
        ip, ig = pairs
        return (ValueSeries(pred.stamp_ns[ip], np.asarray(pred.values, np.float64)[ip]),
                ValueSeries(gt.stamp_ns[ig], np.asarray(gt.values, np.float64)[ig]))

    def gt_steering_rad(self) -> np.ndarray | None:
        """Every ground-truth steering angle of the bag (rad), None if it has none."""
        ix = self.gt.index.get(self.gt_topics.steering or "")
        return None if ix is None or not ix.values else np.asarray(ix.values, np.float64)

    def latency_ms(self) -> np.ndarray | None:
        """Per-frame latency of the replay (ms), None if the bag has none."""
        ix = self.pred.index.get(REPLAY_LATENCY_TOPIC)
        return None if ix is None or not ix.values else np.asarray(ix.values, np.float64)

    def _pair(self, pred: TopicIndex, gt: TopicIndex) -> tuple[np.ndarray, np.ndarray] | None:
        """Indices of predicted messages at matched frames and of the nearest ground truth."""
        in_frames = np.isin(pred.stamp_ns, self.stamps_ns)
        tolerance = int(round(self.gt_topics.match_tolerance_s * 1e9))
        nearest = match_nearest(gt.stamp_ns, pred.stamp_ns, tolerance)
        keep = np.flatnonzero(in_frames & (nearest != NO_MATCH))
        return (keep, nearest[keep]) if keep.size else None

    def ground_truth_images(self, keys: tuple[str, ...]) -> Iterator[tuple[str, np.ndarray]]:
        """``(key, array)`` for every ground-truth image of ``keys`` in the whole bag (matched or
        not), in receive order, as in :class:`FrameMaps`."""
        by_topic = {self.gt_image_topics[k]: k for k in keys if k in self.gt_image_topics}
        connections = [c for c in self.gt.connections() if c.topic in by_topic]
        if not connections:
            return
        for conn, log_ns, msg in self.gt.messages(connections):
            key = by_topic[conn.topic]
            yield key, _clean(key, self._decode(msg, key, self.gt, int(log_ns)), is_gt=True)

    # -- frames -------------------------------------------------------------------------------

    def gt_image_indices(self) -> dict[str, np.ndarray]:
        """``key -> [F]`` index into the ground truth's topic index for each matched frame."""
        return {key: match_exact(self.gt.index[t].stamp_ns, self.stamps_ns)
                for key, t in self.gt_image_topics.items()}

    def __len__(self) -> int:
        return int(self.stamps_ns.size)

    def __iter__(self) -> Iterator[MatchedFrame]:
        pred_at = {key: match_exact(self.pred.index[t].stamp_ns, self.stamps_ns)
                   for key, t in self.pred_image_topics.items()}
        gt_at = self.gt_image_indices()
        gt_topics = dict(self.gt_image_topics)
        if self.camera_topic:
            gt_at["camera"] = match_exact(self.gt.index[self.camera_topic].stamp_ns, self.stamps_ns)
            gt_topics["camera"] = self.camera_topic
        for f, stamp in enumerate(self.stamps_ns):
            gt_msgs = self._read(self.gt, gt_topics, gt_at, f)
            pred_msgs = self._read(self.pred, self.pred_image_topics, pred_at, f)
            camera = self._decode(gt_msgs.pop("camera"), "camera", self.gt, int(stamp), rgb=True) \
                if "camera" in gt_msgs else None
            gt = {key: self._decode(msg, key, self.gt, int(stamp)) for key, msg in gt_msgs.items()}
            gt_maps = FrameMaps(**{k: _clean(k, v, is_gt=True) for k, v in gt.items()})
            size = _frame_size(gt_maps, camera)
            pred = {key: self._decode(msg, key, self.pred, int(stamp)) for key, msg in pred_msgs.items()}
            pred_maps = FrameMaps(**{k: _clean(k, v if size is None else resize_nearest(v, size),
                                               is_gt=False) for k, v in pred.items()})
            yield MatchedFrame(int(stamp), camera, pred_maps, gt_maps)

    @staticmethod
    def _read(bag: BagIndex, keyed_topics: dict[str, str], at: dict[str, np.ndarray], f: int
              ) -> dict[str, Any]:
        wanted: dict[str, tuple[int, int]] = {}
        for key, topic in keyed_topics.items():
            i = int(at[key][f])
            if i != NO_MATCH:
                ix = bag.index[topic]
                wanted[topic] = (int(ix.log_ns[i]), int(ix.stamp_ns[i]))
        found = bag.fetch(wanted)
        missing = sorted(set(wanted) - set(found))
        if missing:
            raise EvaluationError(f"{bag.role} bag {bag.path} changed while it was read: messages on "
                                  f"{', '.join(missing)} are gone; evaluate again")
        by_topic = {topic: key for key, topic in keyed_topics.items()}
        return {by_topic[topic]: msg for topic, msg in found.items()}

    @staticmethod
    def _decode(msg: Any, key: str, bag: BagIndex, stamp_ns: int, rgb: bool = False) -> np.ndarray:
        try:
            return decode_any_rgb(msg) if rgb else decode_array(msg)
        except ImageDecodeError as err:
            raise EvaluationError(f"{bag.role} bag {bag.path}: '{key}' image at stamp {stamp_ns} ns "
                                  f"cannot be decoded: {err}") from None


def _span(stamps_ns: np.ndarray) -> str:
    """``first..last s`` of some stamps, for messages."""
    return f"{stamps_ns.min() * 1e-9:.3f}..{stamps_ns.max() * 1e-9:.3f} s" if stamps_ns.size else "none"


def _frame_size(gt: FrameMaps, camera: np.ndarray | None) -> tuple[int, int] | None:
    """``(H, W)`` of the ground truth (else of the camera image)."""
    for f in fields(gt):
        value = getattr(gt, f.name)
        if value is not None:
            return value.shape[:2]
    return None if camera is None else camera.shape[:2]


def _clean(key: str, array: np.ndarray, is_gt: bool) -> np.ndarray:
    """Decoded image -> the dtype and meaning of :class:`FrameMaps` (see there), as the data
    readers read ground truth; a predicted flow's non-finite values count as no motion."""
    value = per_pixel_map(key, array)
    if key == "scene_flow" and not is_gt:
        return np.nan_to_num(value, nan=0.0, posinf=0.0, neginf=0.0)
    return value
