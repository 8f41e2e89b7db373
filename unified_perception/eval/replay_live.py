"""Live replay: the bag's camera through the REAL node, its outputs recorded into a prediction bag.

A child process runs the node (:mod:`replay_node`); in this process a player publishes, per frame
and at the recorded rate times ``rate``, ``/clock`` (the frame's receive time, for use_sim_time),
the camera_info and the image as recorded (raw CDR bytes, sensor-data QoS, as a camera driver
does), while the recorder (:mod:`replay_recorder`) writes every output. A frame is "out" when at
least one output carries its stamp; the others are counted as dropped, never hidden. Latency per
frame: receive time of its last output minus the player's publish time of the frame.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from tqdm import tqdm

from unified_perception import topics
from unified_perception.eval.prediction_bag import PredictionBag, ReplayCounts, open_prediction_bag
from unified_perception.eval.replay_input import InputBag
from unified_perception.eval.replay_node import NodeProcess, ros_environment
from unified_perception.eval.replay_recorder import OutputRecorder
from unified_perception.eval.replay_settings import ReplayError, ReplaySettings

PLAYER_NODE = "unified_perception_replay"


@dataclass(frozen=True)
class LiveOptions:
    """How to play. Times in seconds."""

    rate: float = 1.0               # multiple of the recorded rate
    domain_id: int = 42
    quiet: bool = False
    storage: str = "mcap"
    startup_timeout_s: float = 60.0     # for the node to load the model and connect
    settle_s: float = 3.0           # after the last frame: wait this long without output at most
    connect_grace_s: float = 0.5    # after discovery: let the node match the recorder too


class _Spinner:
    """An rclpy context on ``domain_id`` with one node spun in a background thread."""

    def __init__(self, domain_id: int) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(PLAYER_NODE, context=self.context)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._running = True
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._running and self.context.ok():
            self._executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self._running = False
        self._thread.join(5.0)
        self._executor.remove_node(self.node)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


class _Player:
    """Publishers of the node's camera inputs and /clock."""

    def __init__(self, spinner: _Spinner, camera: str, compressed: bool) -> None:
        node = spinner.node
        image_type, image_name = ((CompressedImage, topics.CAMERA_IMAGE_COMPRESSED) if compressed
                                  else (Image, topics.CAMERA_IMAGE))
        self.image = node.create_publisher(image_type, "/" + topics.camera_topic(camera, image_name),
                                           qos_profile_sensor_data)
        info_topic = "/" + topics.camera_topic(camera, topics.CAMERA_INFO)
        self.info = node.create_publisher(CameraInfo, info_topic, qos_profile_sensor_data)
        self.clock = node.create_publisher(Clock, topics.CLOCK.name,
                                           QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))

    def connected(self) -> bool:
        return all(p.get_subscription_count() > 0 for p in (self.image, self.info, self.clock))

    def publish(self, log_ns: int, image_cdr: bytes, info_cdr: bytes | None) -> float:
        """Publish one frame; returns the monotonic time the image went out."""
        clock = Clock()
        clock.clock.sec, clock.clock.nanosec = divmod(log_ns, 1_000_000_000)
        self.clock.publish(clock)
        if info_cdr is not None:
            self.info.publish(info_cdr)
        sent_s = time.monotonic()
        self.image.publish(image_cdr)
        return sent_s


def replay_live(source: InputBag, model: Path, settings: ReplaySettings, out: Path,
                options: LiveOptions) -> ReplayCounts:
    """Play ``source`` through the node, write the prediction bag ``out``; returns the counts."""
    with ros_environment(options.domain_id) as env:
        node = NodeProcess(model, settings.params_file, source.camera, source.compressed, env,
                           (settings.camera_to_base_xyz, settings.camera_to_base_rpy))
        spinner = None
        try:
            spinner = _Spinner(options.domain_id)
            player = _Player(spinner, source.camera, source.compressed)
            with open_prediction_bag(out, source.camera, "live", options.storage) as bag:
                recorder = OutputRecorder(spinner.node, bag)
                _wait_for_node(node, player, recorder, options)
                sent = _play(source, player, options)
                _wait_for_outputs(node, recorder, sent, options)
                spinner.close()
                spinner = None
                return _write_timing(bag, sent, recorder.received(), model, options)
        except ReplayError as err:
            raise ReplayError(f"{err}\nnode log ({node.log_path}):\n{node.log_tail()}") from None
        finally:
            if spinner is not None:
                spinner.close()
            node.stop()
            node.remove_log()


def _wait_for_node(node: NodeProcess, player: _Player, recorder: OutputRecorder,
                   options: LiveOptions) -> None:
    deadline = time.monotonic() + options.startup_timeout_s
    while not (player.connected() and recorder.connected()):
        if not node.alive():
            raise ReplayError("the perception node exited before it subscribed to the camera")
        if time.monotonic() > deadline:
            raise ReplayError(f"the perception node did not subscribe to the camera and publish "
                              f"its outputs within {options.startup_timeout_s:.0f} s")
        time.sleep(0.05)
    time.sleep(options.connect_grace_s)


def _play(source: InputBag, player: _Player, options: LiveOptions) -> dict[int, float]:
    """Publish every frame at its recorded time / rate; returns stamp (ns) -> publish time (s)."""
    sent: dict[int, float] = {}
    start_s = first_log = None
    for frame in tqdm(source.frames(), total=source.frame_count, desc="replay --live",
                      unit="frame", disable=options.quiet):
        if start_s is None:
            start_s, first_log = time.monotonic(), frame.log_ns
        delay = start_s + (frame.log_ns - first_log) * 1e-9 / options.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent[frame.stamp_ns] = player.publish(frame.log_ns, frame.image_cdr, frame.info_cdr)
    return sent


def _wait_for_outputs(node: NodeProcess, recorder: OutputRecorder, sent: dict[int, float],
                      options: LiveOptions) -> None:
    """Until every frame has outputs and they stopped coming, or nothing came for ``settle_s``."""
    last_sent = max(sent.values(), default=time.monotonic())
    while node.alive():
        received = recorder.received()
        quiet_s = time.monotonic() - max(recorder.last_receive_s, last_sent)
        if all(stamp in received for stamp in sent) and quiet_s > 0.3:
            return
        if quiet_s > options.settle_s:
            return
        time.sleep(0.02)


def _write_timing(bag: PredictionBag, sent: dict[int, float], received: dict[int, float],
                  model: Path, options: LiveOptions) -> ReplayCounts:
    out = [stamp for stamp in sent if stamp in received]
    for stamp in out:
        bag.write_latency(stamp, (received[stamp] - sent[stamp]) * 1e3)
    counts = ReplayCounts(len(sent), len(out), bag.output_counts())
    bag.write_summary(max(sent, default=0), counts, str(model), f"{options.rate:g}")
    return counts
