"""One pass of the node on the worker thread: decode the newest frames, one batched engine call,
then per camera: build the vehicle outputs (primary camera: steering and odometry, sent first)
and the camera's outputs, and publish them in one burst (:class:`ros.publishers.Outbox`).

A frame that cannot be decoded (unsupported encoding, wrong step, truncated data) is counted,
remembered for the diagnostics and logged (throttled); nothing derived from it is published.
A frame whose model outputs hold NaN / Inf is treated the same way, at error level: none of its
outputs is published, the vehicle outputs never see it (the steering watchdog holds the command)
and the engine restarts that camera's temporal state.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Callable

import numpy as np
from builtin_interfaces.msg import Time

from unified_perception.ros import builders
from unified_perception.ros.camera_input import PendingFrame
from unified_perception.ros.camera_outputs import add_camera_messages
from unified_perception.ros.params import NodeSettings
from unified_perception.ros.publishers import OutputPublishers, Outbox
from unified_perception.ros.received import read_camera_message
from unified_perception.ros.vehicle import VehicleOutputs
from unified_perception.runtime.camera_info import CameraIntrinsics
from unified_perception.runtime.colorize import semantic_palette
from unified_perception.runtime.engine import CameraFrame, InferenceEngine
from unified_perception.runtime.image_codec import ImageDecodeError, decode_any_rgb
from unified_perception.runtime.stats import RunStats


class FramePipeline:
    """Decode -> infer -> publish for the frames the worker took."""

    def __init__(self, engine: InferenceEngine, outputs: OutputPublishers, vehicle: VehicleOutputs,
                 stats: RunStats, settings: Callable[[], NodeSettings],
                 warn_throttled: Callable[[str], None], now: Callable[[], Time],
                 error_throttled: Callable[[str], None] | None = None) -> None:
        self._engine = engine
        self._outputs = outputs
        self._vehicle = vehicle
        self._stats = stats
        self._settings = settings
        self._warn = warn_throttled
        self._error = error_throttled or warn_throttled
        self._now = now
        self._palette = semantic_palette(engine.metadata.class_colors)
        self._lock = threading.Lock()
        self._last_invalid = ""
        self._last_non_finite = ""
        self._intrinsics: dict[str, CameraIntrinsics] = {}     # per camera, on the worker thread

    def process(self, frames: list[PendingFrame]) -> None:
        started = time.monotonic()
        decoded = [got for f in frames if (got := self._decode(f)) is not None]
        if not decoded:
            return
        batch = [CameraFrame(f.camera, image, builders.stamp_to_s(f.msg.header.stamp))
                 for f, image in decoded]
        inferring = time.monotonic()
        results = self._engine.infer(batch)
        inferred = time.monotonic()
        shared = {"decode": inferring - started, "inference": inferred - inferring}
        settings = self._settings()
        for (frame, image), result in zip(decoded, results):
            if not result.finite:
                self._reject_non_finite(frame, result.non_finite)
                continue
            building = time.monotonic()
            frame_id = settings.optical_frame_id(frame.camera_index, frame.msg.header.frame_id)
            hdr = builders.header(frame.msg.header.stamp, frame_id)
            intrinsics = self._intrinsics.get(frame.camera)
            if intrinsics is None:
                intrinsics = self._intrinsics[frame.camera] = CameraIntrinsics(
                    self._engine.input_size, self._engine.metadata)
            K, problem = intrinsics.get(frame.info, image.shape[:2])
            if problem:
                self._warn(f"camera '{frame.camera}': {problem}; using the model's training "
                           f"intrinsics for depth/camera_info and scene_flow/points")
            outbox = Outbox()
            if frame.camera_index == 0:     # steering and odometry first: the car waits on them
                self._vehicle.add_result(outbox, result, frame.msg.header.stamp, self._now(),
                                         frame_id)
            add_camera_messages(outbox, self._outputs.cameras[frame.camera], result, hdr, K,
                                self._palette, settings.motion_threshold,
                                settings.pointcloud_stride, frame.info)
            publishing = time.monotonic()
            outbox.publish()
            done = time.monotonic()
            self._stats.record_frame(done, done - frame.received_s, {
                "take": frame.taken_s - frame.received_s, "queue": started - frame.taken_s,
                **shared, "messages": publishing - building, "publish": done - publishing})

    @property
    def last_invalid_reason(self) -> str:
        """Why the most recent invalid frame was rejected ('' if none was)."""
        with self._lock:
            return self._last_invalid

    @property
    def last_non_finite_reason(self) -> str:
        """Which camera and outputs were last not finite ('' if none ever was)."""
        with self._lock:
            return self._last_non_finite

    def _reject_non_finite(self, frame: PendingFrame, names: tuple[str, ...]) -> None:
        self._stats.count_non_finite()
        reason = f"{frame.camera}: model outputs not finite ({', '.join(names)})"
        with self._lock:
            self._last_non_finite = reason
        self._error(f"dropping a frame from camera '{frame.camera}': {reason}; nothing of it is "
                    f"published and the camera's temporal state restarts")

    def _decode(self, frame: PendingFrame) -> tuple[PendingFrame, np.ndarray] | None:
        """The frame with its message read (a serialized one parsed) and its RGB image; None
        (counted and remembered as invalid) if either step fails."""
        try:
            msg = read_camera_message(frame.msg)
            if msg is not frame.msg:
                frame = dataclasses.replace(frame, msg=msg)
            return frame, decode_any_rgb(msg)
        except ImageDecodeError as err:
            self._stats.count_invalid()
            with self._lock:
                self._last_invalid = f"{frame.camera}: {err}"
            self._warn(f"dropping a frame from camera '{frame.camera}': {err}")
            return None
