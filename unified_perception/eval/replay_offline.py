"""In-process replay: every camera frame of a bag through the node's runtime, nothing skipped.

Per frame, in the bag's order: decode (``runtime.image_codec``), one engine call with the camera's
temporal state (``runtime.engine``), the per-camera outputs and the vehicle outputs
(``runtime.vehicle_state``: odometry integration, steering limits) built as the node builds them.
The steering command is issued at the frame's receive time, as the node running on the bag's
``/clock`` would. A frame the node drops is dropped here too, and counted: one that cannot be
decoded, and one whose model outputs hold NaN / Inf (``FrameResult.finite``): nothing derived from
it is written, the vehicle state never sees it, and the engine restarts the camera's temporal
state, so the next frame has no two-frame outputs. Deterministic: the same bag and model give the
same bytes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from tqdm import tqdm

from unified_perception.eval.prediction_bag import PredictionBag, ReplayCounts
from unified_perception.eval.prediction_messages import camera_messages, vehicle_messages
from unified_perception.eval.replay_input import InputBag, InputFrame
from unified_perception.eval.replay_settings import ReplaySettings
from unified_perception.runtime.camera_info import output_intrinsics
from unified_perception.runtime.colorize import semantic_palette
from unified_perception.runtime.engine import CameraFrame, EngineConfig, InferenceEngine
from unified_perception.runtime.image_codec import ImageDecodeError, decode_any_rgb
from unified_perception.runtime.vehicle_state import VehicleState


def engine_config(model: Path, settings: ReplaySettings) -> EngineConfig:
    """The engine configuration the node builds from the same parameters (no warm-up)."""
    return EngineConfig(model_path=str(model), providers=settings.providers,
                        trt_fp16=settings.trt_fp16, trt_cache_dir=settings.trt_cache_dir,
                        max_gap_s=settings.max_gap_s, warmup_runs=0,
                        intra_op_threads=settings.intra_op_threads,
                        intra_op_spinning=settings.intra_op_spinning)


def ns_to_s(ns: int) -> float:
    """Integer nanoseconds -> seconds, summed as ``sec + nanosec * 1e-9`` like a ROS Time."""
    return ns // 1_000_000_000 + (ns % 1_000_000_000) * 1e-9


class OfflineReplay:
    """The node's per-frame chain for one camera, without ROS."""

    def __init__(self, model: Path, settings: ReplaySettings, camera: str) -> None:
        self.settings = settings
        self.camera = camera
        self.engine = InferenceEngine(engine_config(model, settings), log=lambda _: None)
        self.vehicle = VehicleState(settings.T_base_cam(), settings.steering)
        self.palette = semantic_palette(self.engine.metadata.class_colors)

    def process(self, frame: InputFrame, bag: PredictionBag) -> bool:
        """Run one frame and write its outputs and latency; False (nothing written) if the image
        cannot be decoded or the model's outputs for it are not finite (the node drops both)."""
        start = time.perf_counter()
        try:
            image = decode_any_rgb(frame.image)
        except ImageDecodeError as err:
            print(f"replay: frame {frame.index} is dropped: {err}", file=sys.stderr)
            return False
        s = self.settings
        stamp_s = ns_to_s(frame.stamp_ns)
        result = self.engine.infer([CameraFrame(self.camera, image, stamp_s)])[0]
        if not result.finite:
            print(f"replay: frame {frame.index} is dropped: model outputs not finite "
                  f"({', '.join(result.non_finite)}); the temporal state restarts", file=sys.stderr)
            return False
        K = output_intrinsics(frame.info, image.shape[:2], self.engine.input_size,
                              self.engine.metadata)
        frame_id = s.optical_frame_id or frame.image.header.frame_id
        messages = camera_messages(result, frame.stamp_ns, frame_id, K, self.palette,
                                   s.motion_threshold, s.pointcloud_stride, frame.info)
        messages += vehicle_messages(self.vehicle.odometry(result),
                                     self.vehicle.steering(result, stamp_s, ns_to_s(frame.log_ns)),
                                     frame.stamp_ns, s.odom_frame_id, s.base_frame_id)
        latency_ms = (time.perf_counter() - start) * 1e3
        for out in messages:
            bag.write_message(out.spec, frame.stamp_ns, out.msg)
        bag.write_latency(frame.stamp_ns, latency_ms)
        return True

    def close(self) -> None:
        self.engine.close()


def replay_offline(source: InputBag, replay: OfflineReplay, bag: PredictionBag,
                   progress: bool = True) -> tuple[ReplayCounts, int]:
    """Replay every frame of ``source`` into ``bag``; returns the counts and the last frame's stamp."""
    frames_out = frames_in = last_ns = 0
    for frame in tqdm(source.frames(), total=source.frame_count, desc="replay", unit="frame",
                      disable=not progress):
        frames_in += 1
        frames_out += replay.process(frame, bag)
        last_ns = frame.stamp_ns
    return ReplayCounts(frames_in, frames_out, bag.output_counts()), last_ns
