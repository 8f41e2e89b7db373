"""The metrics package is pure numpy: the trainer, the report and the car can all import it."""

from __future__ import annotations

import subprocess
import sys


def test_metrics_import_neither_torch_ros_nor_plotting() -> None:
    code = ("import sys, unified_perception.eval.metrics; "
            "print(sorted(n for n in ('torch', 'rclpy', 'matplotlib', 'onnxruntime', 'cv2', 'scipy') "
            "if n in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
