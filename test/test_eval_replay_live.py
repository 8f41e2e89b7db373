"""`unified-perception replay --live`: the tiny synthetic bag played through the REAL node process.

The node runs as a child process on its own ROS domain over loopback, with use_sim_time on the
player's /clock. At a rate the node sustains nothing may be dropped, and every frame's outputs
must agree with the in-process replay of the same bag.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message

from replay_helpers import FRAMES, key_values, rclpy_class, read_bag, synth
from unified_perception.cli import main as cli_main
from unified_perception.eval.prediction_bag import TWO_FRAME_OUTPUTS
from unified_perception.eval.replay_recorder import cdr_header_stamp_ns
from unified_perception.runtime.image_codec import decode_array

RATE = "0.5"    # half the recorded 10 Hz: well within what the tiny model sustains on CPU


@pytest.fixture(scope="module")
def replays(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("replay_live")
    bag = synth(root / "drive")
    common = [str(bag), "--model", str(tiny_model_path), "--quiet"]
    domain_before = os.environ["ROS_DOMAIN_ID"]
    assert cli_main(["replay", *common, "--out", str(root / "offline")]) == 0
    # The default domain id (from the pid, 10..99) is not conftest's (100..199) of this process.
    assert cli_main(["replay", *common, "--out", str(root / "live"), "--live", "--rate", RATE]) == 0
    assert os.environ["ROS_DOMAIN_ID"] == domain_before     # restored after the live run
    return root / "offline", root / "live"


def _images(messages, topic: str) -> dict[int, np.ndarray]:
    cls = rclpy_class("sensor_msgs/msg/Image")
    return {ns: decode_array(deserialize_message(raw, cls)) for ns, _, raw in messages[topic]}


def test_live_replay_at_a_sustainable_rate_drops_nothing(replays) -> None:
    _, live = replays
    messages = read_bag(live)
    summary = deserialize_message(messages["/replay/summary"][0][2],
                                  rclpy_class("diagnostic_msgs/msg/DiagnosticArray"))
    values = key_values(summary)
    counts = (values["frames_in"], values["frames_out"], values["dropped"])
    assert counts == (str(FRAMES), str(FRAMES), "0")
    assert (values["mode"], values["rate"]) == ("live", RATE)
    assert len(messages["/replay/latency"]) == FRAMES
    # Every output of every frame reached the recorder, and the summary counts them.
    outputs = {key[len("output "):]: int(v) for key, v in values.items() if key.startswith("output ")}
    assert set(outputs) >= {"depth", "semantic", "instances", "panoptic", "motion_mask",
                            "scene_flow", "odometry", "steering/angle"}
    # (two-frame outputs start at the second frame)
    assert outputs == {name: FRAMES - (name in TWO_FRAME_OUTPUTS) for name in outputs}
    for topic in ("/camera/depth", "/camera/semantic", "/camera/instances", "/camera/panoptic"):
        assert len(messages[topic]) == FRAMES, topic


def test_the_recorder_reads_the_header_stamp_from_the_serialised_bytes() -> None:
    image = rclpy_class("sensor_msgs/msg/Image")(encoding="mono8", height=1, width=2, step=2,
                                                 data=b"\x01\x02")
    image.header.stamp.sec, image.header.stamp.nanosec = 1_700_000_123, 456_789
    image.header.frame_id = "front_optical"
    little = serialize_message(image)
    assert cdr_header_stamp_ns(little) == 1_700_000_123 * 1_000_000_000 + 456_789
    big = bytes([0, 0, 0, 0]) + struct.pack(">iI", -2, 7) + little[12:]
    assert cdr_header_stamp_ns(big) == -2 * 1_000_000_000 + 7
    with pytest.raises(ValueError, match="no header stamp"):
        cdr_header_stamp_ns(little[:9])


def test_live_and_offline_replay_agree_on_every_frame_live_processed(replays) -> None:
    offline, live = (read_bag(path) for path in replays)
    assert set(live) == set(offline)
    for topic in live:
        live_stamps = [ns for ns, _, _ in live[topic]]
        if topic != "/replay/summary":
            assert live_stamps == [ns for ns, _, _ in offline[topic]], topic
    depth_off, depth_live = _images(offline, "/camera/depth"), _images(live, "/camera/depth")
    sem_off, sem_live = _images(offline, "/camera/semantic"), _images(live, "/camera/semantic")
    for stamp in depth_live:
        np.testing.assert_allclose(depth_live[stamp], depth_off[stamp], rtol=1e-4, atol=1e-4)
        assert np.mean(sem_live[stamp] == sem_off[stamp]) > 0.99
    angle = rclpy_class("std_msgs/msg/Float32")
    angles = [[deserialize_message(raw, angle).data for _, _, raw in bag["/steering/angle"]]
              for bag in (live, offline)]
    np.testing.assert_allclose(angles[0], angles[1], atol=1e-5)
