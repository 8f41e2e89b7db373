"""`unified-perception info` describes a model from ONNX Runtime and its metadata alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx

from unified_perception.cli import main as cli_main
from unified_perception.contract import CONTRACT_VERSION, MetadataKey, Task


def test_info_prints_contract_io_and_per_head_costs(tiny_model_path: Path, capsys) -> None:
    assert cli_main(["info", str(tiny_model_path)]) == 0
    text = capsys.readouterr().out
    assert f"contract version: {CONTRACT_VERSION} (checked: OK)" in text
    assert "tasks: " + ", ".join(t.value for t in Task) in text
    assert "input size: 64x128" in text
    for line in ("image                   uint8", "state_in_feat_s4", "pair_valid",
                 "depth range: [0.1, 100.0] m", "13 car", "training recipe:"):
        assert line in text, line
    props = {p.key: p.value for p in onnx.load(str(tiny_model_path), load_external_data=False)
             .metadata_props}
    params = json.loads(props[MetadataKey.HEAD_PARAMETERS.value])
    gflops = json.loads(props[MetadataKey.HEAD_GFLOPS.value])
    table = text.split("per head (at 64x128, one frame):")[1].splitlines()
    for part in ("encoder", "depth", "panoptic", "pose", "motion", "steering"):
        row = next(l for l in table if l.split()[:1] == [part])
        assert f"{params[part]:,}" in row and f"{gflops[part]:.3f}" in row, row
        assert params[part] > 0 and gflops[part] > 0
    total = next(l for l in table if l.split()[:1] == ["total"])
    assert f"{params['total']:,}" in total
    assert params["total"] == sum(v for k, v in params.items() if k != "total")


def test_info_runs_without_torch(tiny_model_path: Path) -> None:
    code = ("import sys; sys.modules['torch'] = None\n"
            "from unified_perception.cli import main\n"
            f"sys.exit(main(['info', {str(tiny_model_path)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "per head" in done.stdout


def test_info_names_the_problem_of_a_model_outside_the_contract(tiny_model_path: Path,
                                                                tmp_path: Path, capsys) -> None:
    proto = onnx.load(str(tiny_model_path))
    for prop in proto.metadata_props:
        if prop.key == MetadataKey.CONTRACT_VERSION.value:
            prop.value = "3.0"
    bad = tmp_path / "future.onnx"
    onnx.save(proto, str(bad))
    assert cli_main(["info", str(bad)]) == 1
    captured = capsys.readouterr()
    assert "contract version is 3.0" in captured.err and not captured.out
    assert cli_main(["info", str(tmp_path / "missing.onnx")]) == 1
    assert "not found" in capsys.readouterr().err
