"""Shared pieces of the replay tests: a tiny synthetic bag and reading a bag back with rosbags."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from unified_perception.cli import main as cli_main

FRAMES, SEED, SIZE = 6, 5, (64, 128)


def synth(out: Path, *extra: str) -> Path:
    """A synthetic bag of :data:`FRAMES` frames at :data:`SIZE` with ground truth."""
    assert cli_main(["synth", "--out", str(out), "--frames", str(FRAMES), "--seed", str(SEED),
                     "--size", f"{SIZE[0]}x{SIZE[1]}", "--quiet", *extra]) == 0
    return out


def read_bag(path: Path) -> dict[str, list[tuple[int, str, bytes]]]:
    """Topic -> [(log time ns, message type, CDR bytes)] in log-time order."""
    out: dict[str, list[tuple[int, str, bytes]]] = defaultdict(list)
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        for conn, ns, raw in reader.messages():
            out[conn.topic].append((ns, conn.msgtype, bytes(raw)))
    return dict(out)


def rclpy_class(msg_type: str) -> Any:
    package, _, name = msg_type.split("/")
    return getattr(__import__(f"{package}.msg", fromlist=[name]), name)


def key_values(msg: Any) -> dict[str, str]:
    """The values of status[0] of a DiagnosticArray."""
    return {kv.key: kv.value for kv in msg.status[0].values}
