"""The perception node end to end against the bare engine call, and where the node's own time goes.

End to end: the node runs as its own process (``perception_node``, CPU provider, Fast DDS on
loopback with the shared-memory profile of ``config/fastdds_large_frames.xml``); a probe process
publishes one camera frame at a time and subscribes to EVERY output topic (so the node builds and
publishes all of them). Latency = the moment the last output of that frame reached the probe's
middleware (``MessageInfo['received_timestamp']``) minus the moment the probe started publishing
the frame (both wall clock, one machine): camera message in -> last output out, transport both
ways included. The probe plays a camera driver and a consumer written in C++: it publishes the
frame as serialized bytes (``ros.serialized``, no Python message object to convert) and takes the
outputs serialized, and the receipt stamps leave out the time its Python executor needs to reach
each callback (2-4 ms per frame for 15 outputs on 2 cores, which is the probe's cost, not the
node's).

Inside the node: its ``/diagnostics`` give the p50 of receipt (by its middleware) -> published and
of each stage of it (take, queue, decode, inference, messages, publish), measured in the running
node.

Breakdown (in-process, warm: the node's own functions on the same frame, in a loop): decode
(``runtime.image_codec``), resize (``runtime.preprocess``), the session call, building every
per-camera message as the node does (``ros.serialized`` + colouring), the scene-flow point
cloud, and publishing the built messages with rclpy to a subscriber in another node.

    .venv/bin/python benchmarks/bench_node_overhead.py --size 96x320 [--frames 15]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench_models import cpu_engine, export_bench_model, parse_size

import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from unified_perception import topics  # noqa: E402
from unified_perception.ros import builders, serialized  # noqa: E402
from unified_perception.ros.camera_outputs import MESSAGES  # noqa: E402
from unified_perception.ros.publishers import _MSG_TYPES  # noqa: E402
from unified_perception.runtime.colorize import colorize_semantic, semantic_palette  # noqa: E402
from unified_perception.runtime.engine import CameraFrame  # noqa: E402
from unified_perception.runtime.image_codec import decode_any_rgb  # noqa: E402
from unified_perception.runtime.model_files import (FASTDDS_PROFILE_VARIABLE,  # noqa: E402
                                                    fastdds_profile_environment)
from unified_perception.runtime.postprocess import instances_u16, motion_mask  # noqa: E402
from unified_perception.runtime.preprocess import batch_images, intrinsics_from_normalized  # noqa: E402
from unified_perception.runtime.scene_flow import scene_flow_points  # noqa: E402

CAMERA = "front"
CAMERA_HW = (720, 1280)
OPTICAL_FRAME = "front_optical"
WARMUP_FRAMES = 2


def camera_message(camera_hw: tuple[int, int], seed: int = 0) -> tuple[Image, CameraInfo]:
    """A random rgb8 frame and its CameraInfo (fx = 0.6 W, principal point at the centre)."""
    h, w = camera_hw
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    image = builders.image(rgb, "rgb8", builders.header(builders.s_to_stamp(0.0), OPTICAL_FRAME))
    fx = 0.6 * w
    info = CameraInfo(header=image.header, height=h, width=w,
                      k=[fx, 0.0, w / 2, 0.0, fx, h / 2, 0.0, 0.0, 1.0])
    return image, info


class SerializedCamera:
    """A camera frame and its CameraInfo serialized per send with a new stamp, as a driver
    written in C++ would publish them (``ros.serialized``: no Python message object)."""

    def __init__(self, camera_hw: tuple[int, int], seed: int = 0) -> None:
        image, info = camera_message(camera_hw, seed)
        self.rgb = decode_any_rgb(image)
        self.K = np.asarray(info.k, np.float64).reshape(3, 3)

    def messages(self, stamp_s: float) -> tuple[bytes, bytes]:
        """Serialized ``(CameraInfo, Image)`` stamped ``stamp_s`` (s)."""
        hdr = builders.header(builders.s_to_stamp(stamp_s), OPTICAL_FRAME)
        return (serialized.camera_info(self.K, self.rgb.shape[:2], hdr),
                serialized.image(self.rgb, "rgb8", hdr))


def per_camera_outputs() -> list[topics.TopicSpec]:
    return [s for s in topics.OUTPUT_TOPICS if s.per_camera]


def vehicle_outputs() -> list[topics.TopicSpec]:
    """The vehicle outputs every node publishes for every frame (ackermann only where installed,
    tf switched off; /path goes out once per ``path_period_s``, see :class:`OutputProbe`)."""
    return [topics.ODOMETRY, topics.STEERING_ANGLE, topics.STEERING_MARKER]


class OutputProbe:
    """Publishes camera frames; records when each output topic last received a message."""

    def __init__(self, context: Context) -> None:
        self.node = Node("benchmark_probe", context=context)
        self.image_pub = self.node.create_publisher(Image, topics.camera_topic(CAMERA, topics.CAMERA_IMAGE),
                                                    qos_profile_sensor_data)
        self.info_pub = self.node.create_publisher(CameraInfo, topics.camera_topic(CAMERA, topics.CAMERA_INFO),
                                                   qos_profile_sensor_data)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._lock = threading.Lock()
        self.received: dict[str, float] = {}
        self._complete = threading.Event()     # set by the callback that completes a frame
        names = [topics.camera_topic(CAMERA, s.name) for s in per_camera_outputs()] + \
                [s.name for s in vehicle_outputs()]
        specs = per_camera_outputs() + vehicle_outputs()
        self.topics = names
        for name, spec in zip(names, specs):
            self.node.create_subscription(_MSG_TYPES[spec.msg_type], name, self._stamp(name), reliable,
                                          raw=True)
        # Subscribed so that the node builds and publishes it when due (not awaited per frame).
        self.node.create_subscription(_MSG_TYPES[topics.PATH.msg_type], topics.PATH.name,
                                      lambda _: None, reliable)
        self.node_report: dict[str, str] = {}    # the node's newest /diagnostics key-values
        self.node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS.name, self._diagnostics, 10)

    def _diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith(": inference"):
                with self._lock:
                    self.node_report = {kv.key: kv.value for kv in status.values}

    def node_p50s_ms(self, frames: int, timeout_s: float = 10.0) -> dict[str, float] | None:
        """The node's own p50 latency (``latency``: camera message received by its middleware ->
        last output published, its clock) and the p50 of each of its stages (``take``, ``queue``,
        ``decode``, ``inference``, ``messages``, ``publish``), from ``/diagnostics`` once it reports at least
        ``frames`` processed frames; None if it does not within ``timeout_s``."""
        end = time.time() + timeout_s
        while time.time() < end:
            with self._lock:
                report = dict(self.node_report)
            if int(report.get("frames_processed", 0)) >= frames:
                return {key.removesuffix("_p50_ms"): float(value) for key, value in report.items()
                        if key.endswith("_p50_ms")}
            time.sleep(0.1)
        return None

    def _stamp(self, name: str) -> Callable[[Any, Any], None]:
        def callback(_: bytes, info: Any) -> None:
            # When the middleware received it (ns, wall clock); the callback's own time if the
            # middleware gives none.
            arrived = info["received_timestamp"] * 1e-9 or time.time()
            with self._lock:
                self.received[name] = arrived
                if len(self.received) == len(self.topics):
                    self._complete.set()
        return callback

    def send(self, camera: SerializedCamera) -> float:
        """Publish ``camera``'s frame stamped now; returns the stamp (s, wall clock), taken before
        the frame is serialized."""
        sent = time.time()
        info, image = camera.messages(sent)
        with self._lock:
            self.received.clear()
            self._complete.clear()
        self.info_pub.publish(info)
        self.image_pub.publish(image)
        return sent

    def all_received(self, timeout_s: float) -> float | None:
        """The time the last of every output topic arrived, once all have; None if they have not
        within ``timeout_s``. Waits on an event (no polling: the probe takes no CPU from the node
        while it waits)."""
        if not self._complete.wait(timeout_s):
            return None
        with self._lock:
            return max(self.received.values())


def start_node(model: Path, env: dict[str, str]) -> subprocess.Popen:
    code = "import sys; from unified_perception.ros.node_main import run; sys.exit(run(sys.argv))"
    return subprocess.Popen(
        [sys.executable, "-c", code, "--ros-args", "-p", f"model_path:={model}",
         "-p", "providers:=[cpu]", "-p", f"cameras:=[{CAMERA}]", "-p", "max_gap_s:=30.0",
         "-p", "steering.stale_timeout_s:=10.0", "-p", "publish_tf:=false"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class RunningNode:
    """The node as its own process with a probe in this one; :meth:`frame_ms` sends one frame and
    returns ms until the last of all its outputs arrived (None on timeout). A context manager."""

    def __init__(self, model: Path, camera_hw: tuple[int, int] = CAMERA_HW, timeout_s: float = 20.0) -> None:
        self.model, self.timeout_s = model, timeout_s
        self.camera = SerializedCamera(camera_hw)

    def __enter__(self) -> "RunningNode":
        env = dict(os.environ, PYTHONUNBUFFERED="1", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                   ROS_DOMAIN_ID=os.environ.get("ROS_DOMAIN_ID", str(20 + os.getpid() % 80)))
        env.update(fastdds_profile_environment(env))
        os.environ.update({k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID",
                                               FASTDDS_PROFILE_VARIABLE)})
        self.process = start_node(self.model, env)
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.probe = OutputProbe(self.context)
        self.executor.add_node(self.probe.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()
        deadline = time.time() + 60.0
        while self.probe.image_pub.get_subscription_count() == 0 or \
                self.probe.node.count_publishers(self.probe.topics[0]) == 0:
            if self.process.poll() is not None or time.time() > deadline:
                self.__exit__()
                raise RuntimeError("the perception node did not come up")
            time.sleep(0.1)
        time.sleep(1.0)      # let every subscription match
        for _ in range(WARMUP_FRAMES):   # the first frame starts the pair; both warm up
            self.frame_ms()
        return self

    def frame_ms(self) -> float | None:
        sent = self.probe.send(self.camera)
        last = self.probe.all_received(self.timeout_s)
        return None if last is None else (last - sent) * 1e3

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(2)
        try:
            self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
        self.executor.shutdown()
        rclpy.shutdown(context=self.context)


def node_vs_bare_ms(model: Path, frames: int, camera_hw: tuple[int, int] = CAMERA_HW
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, float] | None]:
    """``frames`` end-to-end latencies of the node and as many bare ``InferenceEngine.infer``
    calls on the same camera image (resize included, state carried), interleaved frame by frame
    so that both see the same machine load, and the node's own p50 latency and stage p50s over
    those frames and the warm-up ones (``latency`` = receipt -> published, ``inference``, ...:
    from its ``/diagnostics``; None if it did not report). ms."""
    engine = cpu_engine(model)
    rgb = decode_any_rgb(camera_message(camera_hw)[0])
    engine.infer([CameraFrame(CAMERA, rgb, 0.0)])
    node_ms, bare_ms = [], []
    with RunningNode(model, camera_hw) as node:
        for i in range(frames):
            if (ms := node.frame_ms()) is not None:
                node_ms.append(ms)
            start = time.perf_counter()
            engine.infer([CameraFrame(CAMERA, rgb, 0.1 * (i + 1))])
            bare_ms.append((time.perf_counter() - start) * 1e3)
        node_own = node.probe.node_p50s_ms(frames + WARMUP_FRAMES)
    engine.close()
    return np.asarray(node_ms), np.asarray(bare_ms), node_own


def _median_ms(fn: Callable[[], Any], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return float(np.median(samples))


def node_breakdown_ms(model: Path, repeats: int, camera_hw: tuple[int, int] = CAMERA_HW) -> dict[str, float]:
    """Median ms of each step the node performs on one frame (in this process)."""
    engine = cpu_engine(model)
    msg, _ = camera_message(camera_hw)
    rgb = decode_any_rgb(msg)
    size = engine.input_size
    image = batch_images([rgb], size)
    for i in range(2):
        result = engine.infer([CameraFrame(CAMERA, image[0], 0.1 * i)])[0]
    K = intrinsics_from_normalized(engine.metadata.intrinsics_normalized, size)
    palette = semantic_palette(engine.metadata.class_colors)
    hdr = builders.header(builders.s_to_stamp(1.0), OPTICAL_FRAME)
    session = engine._session   # the bare ONNX Runtime call, for the split of the engine's time
    feeds = {"image": image, **{s.in_name: s.zeros(1) for s in engine.state_specs}}

    msgs = MESSAGES     # what the node builds: serialized messages where rclpy publishes bytes

    def build_images() -> list[Any]:
        return [msgs.image(result.depth_m, topics.DEPTH.encoding, hdr),
                msgs.camera_info(K, result.depth_m.shape, hdr),
                msgs.image(result.semantic, topics.SEMANTIC.encoding, hdr),
                msgs.image(colorize_semantic(result.semantic, palette), topics.SEMANTIC_COLOR.encoding, hdr),
                msgs.image(instances_u16(result.instances), topics.INSTANCES.encoding, hdr),
                msgs.image(result.panoptic, topics.PANOPTIC.encoding, hdr),
                msgs.image(motion_mask(result.motion_prob, 0.5), topics.MOTION_MASK.encoding, hdr),
                msgs.image(result.scene_flow_m, topics.SCENE_FLOW.encoding, hdr)]

    def build_cloud() -> Any:
        return msgs.flow_cloud(*scene_flow_points(result.depth_m, result.scene_flow_m, K, 0.1, 4), hdr)

    messages = build_images() + [build_cloud()]
    types = [Image, CameraInfo] + [Image] * 6 + [PointCloud2]
    context = Context()
    rclpy.init(context=context)
    publisher_node, listener = Node("bench_pub", context=context), Node("bench_sub", context=context)
    reliable = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
    pubs = [publisher_node.create_publisher(t, f"bench/out{i}", reliable) for i, t in enumerate(types)]
    for i, t in enumerate(types):
        listener.create_subscription(t, f"bench/out{i}", lambda _: None, reliable)
    time.sleep(1.0)
    try:
        steps = {
            "decode": _median_ms(lambda: decode_any_rgb(msg), repeats),
            "resize": _median_ms(lambda: batch_images([rgb], size), repeats),
            "session call": _median_ms(lambda: session.run(None, feeds), repeats),
            "engine call (model-size image)": _median_ms(
                lambda: engine.infer([CameraFrame(CAMERA, image[0], 10.0)]), repeats),
            "message building": _median_ms(build_images, repeats),
            "point cloud": _median_ms(build_cloud, repeats),
            "publishing": _median_ms(lambda: [p.publish(m) for p, m in zip(pubs, messages)], repeats),
        }
    finally:
        publisher_node.destroy_node()
        listener.destroy_node()
        rclpy.shutdown(context=context)
        engine.close()
    return {k: round(v, 2) for k, v in steps.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="96x320")
    parser.add_argument("--model", type=Path)
    parser.add_argument("--frames", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or export_bench_model(*parse_size(args.size), Path(tmp))
        e2e, bare, own = node_vs_bare_ms(model, args.frames)
        print(f"node end to end p50 {np.median(e2e):.1f} ms ({len(e2e)} frames), bare engine p50 "
              f"{np.median(bare):.1f} ms, ratio {np.median(e2e) / np.median(bare):.2f}; the node's "
              f"own p50s (ms, its /diagnostics): {own}")
        print(node_breakdown_ms(model, args.frames))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
