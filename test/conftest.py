"""Shared fixtures. Every ROS process the tests start stays on loopback in its own domain."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))

TINY_HEIGHT, TINY_WIDTH = 64, 128


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised unified model (all tasks, light head widths) exported to ONNX at 64x128."""
    from unified_perception.train.export import export_model
    from unified_perception.train.model import build_unified_model

    model = build_unified_model("resnet18", input_height=TINY_HEIGHT, input_width=TINY_WIDTH, seed=0,
                                preset="light")
    path = tmp_path_factory.mktemp("models") / "tiny_unified.onnx"
    export_model(model, path)
    return path
