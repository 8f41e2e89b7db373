"""Property-based fuzz of camera messages (hypothesis, seeded: ``derandomize=True``).

In-process, 600 cases against the runtime decode path the node uses (``decode_any_rgb``, then
the resize to the model size): every message either decodes to ``[height, width, 3] uint8`` or is
refused with :class:`ImageDecodeError` - never another exception, never a huge allocation. Then a
sample of refused messages goes through the live node (raw and compressed transport): none
produces an output, each is counted, and the node keeps processing good frames.
"""

from __future__ import annotations

import array
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nav_msgs.msg import Odometry
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from fault_helpers import running_node
from ros_helpers import CameraFeed, Recorder, camera_info, rgb_image, stamp_now, wait_until
from unified_perception.runtime.image_codec import (
    COLOR_FORMATS, MAX_COMPRESSED_PIXELS, ImageDecodeError, decode_any_rgb)
from unified_perception.runtime.preprocess import resize_to_model

FUZZ = settings(max_examples=300, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ENCODINGS = sorted(COLOR_FORMATS) + ["hsv8", "32FC1", "16UC3", "", "RGB8", "rgb8 ", "jpeg",
                                      "bayer_xxxx8", "8UC4", "mono32"]

sizes = st.one_of(st.integers(0, 48), st.integers(2 ** 16, 2 ** 31 - 1))


@st.composite
def raw_images(draw: st.DrawFn) -> SimpleNamespace:
    """Any encoding name (known, unknown, lying), step, size and data length."""
    height, width = draw(sizes), draw(sizes)
    encoding = draw(st.sampled_from(ENCODINGS))
    if draw(st.booleans()) and height * width < 4096:      # a step that matches some layout
        step = width * draw(st.sampled_from([1, 2, 3, 4, 6, 8])) + draw(st.integers(0, 3))
    else:
        step = draw(st.one_of(st.integers(0, 512), st.integers(2 ** 20, 2 ** 32 - 1)))
    if draw(st.booleans()) and step * height <= 64 * 1024:
        length = step * height - draw(st.sampled_from([0, 0, 1, step]))
    else:
        length = draw(st.integers(0, 2048))
    data = draw(st.binary(min_size=max(length, 0), max_size=max(length, 0)))
    return SimpleNamespace(height=height, width=width, encoding=encoding, step=step,
                           is_bigendian=draw(st.sampled_from([0, 1, 2])), data=data)


def _encoded(kind: str, seed: int) -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    return cv2.imencode(kind, rgb)[1].tobytes()


PAYLOADS = {kind: [_encoded(kind, seed) for seed in range(3)] for kind in (".png", ".jpg")}


@st.composite
def compressed_images(draw: st.DrawFn) -> SimpleNamespace:
    """Valid, truncated, bit-flipped, size-patched JPEG / PNG and plain garbage."""
    kind = draw(st.sampled_from(sorted(PAYLOADS)))
    data = bytearray(draw(st.sampled_from(PAYLOADS[kind])))
    fault = draw(st.sampled_from(["none", "truncate", "flip", "huge", "garbage", "empty"]))
    if fault == "truncate":
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif fault == "flip":
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
    elif fault == "huge":
        side = draw(st.sampled_from([0, 1, 3, 641, 6325, 9000, 65535]))   # 6325^2 > the limit
        at = 16 if kind == ".png" else data.find(b"\xff\xc0") + 5
        size = (side.to_bytes(4, "big") * 2 if kind == ".png" else side.to_bytes(2, "big") * 2)
        data[at:at + len(size)] = size
    elif fault == "garbage":
        data = bytearray(draw(st.binary(max_size=512)))
    elif fault == "empty":
        data = bytearray()
    return SimpleNamespace(format=draw(st.sampled_from(["jpeg", "png", "rgb8; jpeg compressed bgr8",
                                                       "", "tiff"])), data=bytes(data))


def _decodes_or_refuses(msg: SimpleNamespace) -> np.ndarray | None:
    """The decoded image, or None when refused; any other exception fails the test."""
    try:
        rgb = decode_any_rgb(msg)
    except ImageDecodeError:
        return None
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert resize_to_model(rgb, (64, 128)).shape == (64, 128, 3)
    return rgb


@FUZZ
@given(raw_images())
def test_a_raw_image_decodes_to_its_declared_size_or_is_refused(msg: SimpleNamespace) -> None:
    rgb = _decodes_or_refuses(msg)
    if rgb is not None:
        assert rgb.shape[:2] == (msg.height, msg.width)
        assert msg.encoding in COLOR_FORMATS and len(msg.data) >= msg.step * msg.height


@FUZZ
@given(compressed_images())
def test_a_compressed_image_decodes_within_the_pixel_limit_or_is_refused(msg: SimpleNamespace) -> None:
    rgb = _decodes_or_refuses(msg)
    if rgb is not None:
        assert rgb.shape[0] * rgb.shape[1] <= MAX_COMPRESSED_PIXELS


def _refused_sample(strategy: st.SearchStrategy, count: int) -> list[SimpleNamespace]:
    """``count`` messages of ``strategy`` that the decoder refuses, drawn reproducibly."""
    found: list[SimpleNamespace] = []

    @settings(max_examples=count * 10, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(msg: SimpleNamespace) -> None:
        if len(found) < count and _decodes_or_refuses(msg) is None:
            found.append(msg)

    collect()
    return found


def _as_ros(msg: SimpleNamespace, stamp) -> Image | CompressedImage:
    if hasattr(msg, "format"):
        out = CompressedImage(header=Header(stamp=stamp, frame_id="cam"), format=msg.format)
    else:   # rclpy fields are 32-bit: keep the lie, wrap the numbers into their range
        out = Image(header=Header(stamp=stamp, frame_id="cam"), height=msg.height % 2 ** 32,
                    width=msg.width % 2 ** 32, encoding=msg.encoding, step=msg.step % 2 ** 32,
                    is_bigendian=msg.is_bigendian % 256)
    out.data = array.array("B", msg.data)
    return out


def _good(stamp, compressed: bool):
    rgb = np.random.default_rng(7).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    if not compressed:
        return rgb_image(rgb, stamp, "cam")
    msg = CompressedImage(header=Header(stamp=stamp, frame_id="cam"), format="png")
    msg.data = array.array("B", cv2.imencode(".png", rgb[..., ::-1])[1].tobytes())
    return msg


def _invalid_count(recorder: Recorder) -> int:
    msgs = recorder.messages("/diagnostics")
    return int({kv.key: kv.value for kv in msgs[-1].status[0].values}["frames_invalid"]) if msgs else 0


def test_refused_messages_through_the_live_node_publish_nothing_and_are_counted(
        tiny_model_path: Path) -> None:
    for transport, strategy, kind in (("raw", raw_images(), Image),
                                      ("compressed", compressed_images(), CompressedImage)):
        sample = _refused_sample(strategy, 12)
        with running_node(tiny_model_path, f"fuzz_{transport}",
                          Parameter("transport", value=transport),
                          Parameter("diagnostics_period_s", value=0.1)) as (_, node, tester):
            topic = "image_raw/compressed" if transport == "compressed" else "image_raw"
            feed = CameraFeed(tester, "front", kind, topic)
            recorder = Recorder(tester, [("front/depth", Image), ("front/semantic", Image),
                                         ("odometry", Odometry),
                                         ("/diagnostics", DiagnosticArray)])
            feed.wait_connected()
            bad_stamps = []
            for msg in sample:
                bad = _as_ros(msg, stamp_now(tester))
                bad_stamps.append(bad.header.stamp)
                feed.send(bad, camera_info(128, 64, "cam"))
                time.sleep(0.03)
            for _ in range(20):      # the node still runs: a good frame gets its outputs
                good = _good(stamp_now(tester), transport == "compressed")
                feed.send(good, camera_info(128, 64, "cam"))
                try:
                    recorder.wait_for("front/depth", lambda m: m.header.stamp == good.header.stamp, 1.5)
                    break
                except AssertionError:
                    continue
            wait_until(lambda: _invalid_count(recorder) >= len(sample) // 2, 10.0,
                       "the refused frames to be counted")
            for topic_name in ("front/depth", "front/semantic", "odometry"):
                stamps = [m.header.stamp for m in recorder.messages(topic_name)]
                assert not [s for s in bad_stamps if s in stamps], topic_name
