"""The engine's ONNX Runtime session settings: CPU threads sleep between operators unless asked to
spin (``intra_op_spinning``, default from the parameter table), and never spin between calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from unified_perception.ros.params import PARAM_BY_NAME
from unified_perception.runtime.engine import EngineConfig, InferenceEngine


@pytest.mark.parametrize("spinning, entry", [(False, "0"), (True, "1")])
def test_cpu_threads_spin_only_when_asked(tiny_model_path: Path, spinning: bool, entry: str) -> None:
    engine = InferenceEngine(EngineConfig(str(tiny_model_path), providers=("cpu",), warmup_runs=0,
                                          intra_op_spinning=spinning), log=lambda _: None)
    options = engine._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == entry
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"
    engine.close()


def test_spinning_is_off_by_default() -> None:
    assert EngineConfig("m.onnx").intra_op_spinning is False
    assert PARAM_BY_NAME["intra_op_spinning"].default is False
