"""Soak: the perception node under sustained overload (30 Hz 720x1280 frames, CPU inference slower).

Starts ``perception_node`` as its own process (Fast DDS on loopback, its own ROS domain) with a
random model with the shipped model's heads at 192x640 (``bench_models.export_bench_model``, or
``--model``), then:

1. single-frame latency: one frame at a time, each sent after the previous output arrived;
2. soak: ``--rate`` Hz frames for ``--seconds`` while recording every ``front/depth`` output,
   the node's resident memory (``/proc/<pid>/status`` VmRSS) each second and its /diagnostics.

Both processes use ``config/fastdds_large_frames.xml`` (shared memory with a segment large enough
for a 720p frame) unless FASTDDS_DEFAULT_PROFILES_FILE names another profile.
Latency is output receipt minus the frame's stamp (wall clock, both processes on one machine).
Prints the figures and the issue's checks (p99 within 2x the single-frame latency, RSS growth
from the first to the last minute, no output older than one inference period), writes them as
JSON to ``--out``. Needs the train extra to export the model (not with ``--model``).

    .venv/bin/python benchmarks/soak_node.py [--seconds 120 --rate 30 --out out/soak.json]
"""

from __future__ import annotations

import argparse
import array
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))   # run as a script from a checkout

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from unified_perception.image_size import parse_size  # noqa: E402
from unified_perception.runtime.model_files import fastdds_profile_environment  # noqa: E402
from unified_perception.ros.builders import s_to_stamp, stamp_to_s  # noqa: E402

from bench_models import export_bench_model  # noqa: E402   (benchmarks/ is the script's folder)

CAMERA_HW = (720, 1280)


def start_node(model: Path, env: dict[str, str]) -> subprocess.Popen:
    code = "import sys; from unified_perception.ros.node_main import run; sys.exit(run(sys.argv))"
    return subprocess.Popen(
        [sys.executable, "-c", code, "--ros-args", "-p", f"model_path:={model}",
         "-p", "providers:=[cpu]", "-p", "steering.stale_timeout_s:=5.0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


class Probe:
    """Publishes camera frames, records depth outputs (stamp, receipt) and the last diagnostics."""

    def __init__(self, context: Context) -> None:
        self.node = Node("soak_probe", context=context)
        self.image_pub = self.node.create_publisher(Image, "front/image_raw", qos_profile_sensor_data)
        self.info_pub = self.node.create_publisher(CameraInfo, "front/camera_info",
                                                   qos_profile_sensor_data)
        self._lock = threading.Lock()
        self.outputs: list[tuple[float, float]] = []     # (stamp_s, received_s)
        self.diagnostics: dict[str, str] = {}
        reliable = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(Image, "front/depth", self._on_depth, reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, reliable)
        rgb = np.random.default_rng(0).integers(0, 256, (*CAMERA_HW, 3), dtype=np.uint8)
        self.image = Image(header=Header(frame_id="front_optical"), height=CAMERA_HW[0],
                           width=CAMERA_HW[1], encoding="rgb8", step=3 * CAMERA_HW[1])
        self.image.data = array.array("B", rgb.tobytes())
        fx = 0.6 * CAMERA_HW[1]
        self.info = CameraInfo(header=self.image.header, height=CAMERA_HW[0], width=CAMERA_HW[1],
                               k=[fx, 0.0, CAMERA_HW[1] / 2, 0.0, fx, CAMERA_HW[0] / 2, 0.0, 0.0, 1.0])

    def _on_depth(self, msg: Image) -> None:
        with self._lock:
            self.outputs.append((stamp_to_s(msg.header.stamp), time.time()))

    def _on_diag(self, msg: DiagnosticArray) -> None:
        with self._lock:
            self.diagnostics = {kv.key: kv.value for kv in msg.status[0].values}

    def send(self) -> float:
        stamp_s = time.time()
        self.image.header.stamp = self.info.header.stamp = s_to_stamp(stamp_s)
        self.info_pub.publish(self.info)
        self.image_pub.publish(self.image)
        return stamp_s

    def output_of(self, stamp_s: float) -> tuple[float, float] | None:
        with self._lock:
            return next((o for o in self.outputs if abs(o[0] - stamp_s) < 1e-6), None)


def single_frame_latency_s(probe: Probe, frames: int) -> np.ndarray:
    """Latency of frames sent one at a time, each after the previous one's output (or a timeout)."""
    latencies = []
    while len(latencies) < frames:
        stamp_s = probe.send()
        deadline = time.time() + 5.0
        while (out := probe.output_of(stamp_s)) is None and time.time() < deadline:
            time.sleep(0.005)
        if out is not None:
            latencies.append(out[1] - out[0])
        time.sleep(0.2)
    return np.asarray(latencies)


def soak(probe: Probe, pid: int, seconds: float, rate_hz: float) -> tuple[int, list[tuple[float, float]]]:
    """Publish at ``rate_hz`` for ``seconds``; returns frames sent and (elapsed_s, RSS MiB) samples."""
    start = time.perf_counter()
    sent, rss, next_rss = 0, [], 0.0
    while (elapsed := time.perf_counter() - start) < seconds:
        probe.send()
        sent += 1
        if elapsed >= next_rss:
            rss.append((elapsed, rss_mib(pid)))
            next_rss += 1.0
        time.sleep(max(0.0, start + sent / rate_hz - time.perf_counter()))
    rss.append((time.perf_counter() - start, rss_mib(pid)))
    return sent, rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="ONNX model (default: export a random light one)")
    parser.add_argument("--size", default="192x640", help="model input HxW when exporting")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--rate", type=float, default=30.0, help="camera frames per second")
    parser.add_argument("--single-frames", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("out/soak.json"))
    args = parser.parse_args()

    # 2.7 MB frames need the shared-memory profile: over the default transports most are lost.
    dds = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "ROS_DOMAIN_ID": os.environ.get("ROS_DOMAIN_ID", "61"),
           **fastdds_profile_environment()}
    os.environ.update(dds)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with tempfile.TemporaryDirectory() as tmp:
        height, width = parse_size(args.size)
        model = args.model or export_bench_model(height, width, Path(tmp))
        node = start_node(model, env)
        context = Context()
        rclpy.init(context=context)
        executor = SingleThreadedExecutor(context=context)
        probe = Probe(context)
        executor.add_node(probe.node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        try:
            while probe.image_pub.get_subscription_count() == 0:
                if node.poll() is not None:
                    raise RuntimeError(f"the node exited: {node.stdout.read()}")
                time.sleep(0.1)
            single = single_frame_latency_s(probe, args.single_frames)
            before = len(probe.outputs)
            sent, rss = soak(probe, node.pid, args.seconds, args.rate)
            time.sleep(2.0 * float(np.max(single)) + 1.5)     # last output and diagnostics
            with probe._lock:
                outputs = np.asarray(probe.outputs[before:])
                diagnostics = dict(probe.diagnostics)
        finally:
            node.send_signal(2)
            try:
                node_log = node.communicate(timeout=10)[0]
            except subprocess.TimeoutExpired:
                node.kill()
                node_log = node.communicate()[0]
            executor.shutdown()
            rclpy.shutdown(context=context)
    report = summarise(single, outputs, sent, rss, diagnostics, args)
    report["node_exit_code"] = node.returncode
    report["node_error_lines"] = [line for line in node_log.splitlines() if "ERROR" in line]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    for key, value in report.items():
        print(f"{key}: {value}")
    return 0


def summarise(single: np.ndarray, outputs: np.ndarray, sent: int, rss: list[tuple[float, float]],
              diagnostics: dict[str, str], args: argparse.Namespace) -> dict:
    """The figures and checks of the soak (times in ms, memory in MiB)."""
    latency = outputs[:, 1] - outputs[:, 0]
    period = float(np.median(np.diff(np.sort(outputs[:, 1]))))
    single_ms = float(np.median(single)) * 1e3
    p50, p99, worst = (float(v) * 1e3 for v in np.percentile(latency, [50, 99, 100]))
    rss_t = np.array(rss)
    first = float(rss_t[rss_t[:, 0] <= 60.0][-1, 1])
    last = float(rss_t[-1, 1])
    # An output waited for a frame at most one inference period: its latency beyond a single
    # frame's is that wait (the worker finishing the previous frame).
    worst_wait_ms = worst - single_ms
    return {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "seconds": args.seconds, "rate_hz": args.rate, "camera_size": f"{CAMERA_HW[1]}x{CAMERA_HW[0]}",
        "frames_sent": sent, "outputs": int(len(outputs)),
        "single_frame_latency_ms_p50": round(single_ms, 1),
        "latency_ms_p50": round(p50, 1), "latency_ms_p99": round(p99, 1),
        "latency_ms_max": round(worst, 1),
        "inference_period_ms": round(period * 1e3, 1),
        "node_frames_received": diagnostics.get("frames_received"),
        "node_frames_processed": diagnostics.get("frames_processed"),
        "node_frames_dropped": diagnostics.get("frames_dropped"),
        "lost_before_the_node": (sent - int(diagnostics["frames_received"]))
        if "frames_received" in diagnostics else None,
        "rss_mib_start": round(float(rss_t[0, 1]), 1), "rss_mib_after_first_minute": round(first, 1),
        "rss_mib_end": round(last, 1),
        "check_p99_within_2x_single": p99 <= 2.0 * single_ms,
        "check_rss_growth_below_5_percent": (last - first) / first < 0.05,
        "check_no_output_older_than_one_period": worst_wait_ms <= period * 1e3,
    }


if __name__ == "__main__":
    sys.exit(main())
