"""`export --checkpoint` of a trained checkpoint: the architecture comes from the checkpoint, the
recipe and data summary go into the ONNX metadata, and `info` no longer says untrained."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from trainer_helpers import one_torch_thread, tiny_bags, tiny_recipe  # noqa: F401
from unified_perception.cli import main as cli_main
from unified_perception.contract import MetadataKey
from unified_perception.train.checkpoint import BEST, LATEST, save_checkpoint, load_checkpoint
from unified_perception.train.recipe import parse_recipe
from unified_perception.train.trainer import Trainer

TASKS = ["depth", "semantic", "instance", "panoptic"]


@pytest.fixture(scope="module")
def trained(tiny_bags: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder after two steps of a depth + segmentation model (light heads, 64 x 128)."""
    recipe = parse_recipe(tiny_recipe(tiny_bags, name="tiny_export", model={"tasks": TASKS},
                                      optim={"steps": 2}))
    return Trainer(recipe, tmp_path_factory.mktemp("export_run"), progress=False).run()


def test_export_of_a_checkpoint_writes_its_recipe_and_data_summary_into_the_metadata(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    onnx_path = tmp_path / "trained.onnx"
    assert cli_main(["export", "--checkpoint", str(trained / BEST), "--out", str(onnx_path)]) == 0
    assert "resnet18 64x128, tasks depth, semantic, instance, panoptic" in capsys.readouterr().out
    props = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    recipe = json.loads(props[MetadataKey.TRAINING_RECIPE.value])
    assert recipe["name"] == "tiny_export" and recipe["optim"]["steps"] == 2
    assert recipe["checkpoint"] == {"file": BEST, "step": 2, "backbone_init": "random"}
    summary = json.loads(props[MetadataKey.DATA_SUMMARY.value])
    assert summary == load_checkpoint(trained / BEST)["data_summary"]
    assert "rosbag" in json.dumps(summary["train"]) and summary["validation"]
    intrinsics = json.loads(props[MetadataKey.INTRINSICS_NORMALIZED.value])
    assert intrinsics == pytest.approx(load_checkpoint(trained / BEST)["intrinsics_normalized"])
    assert cli_main(["info", str(onnx_path)]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("training recipe"))
    assert "untrained" not in line and "tiny_export" in line


def test_export_flags_that_disagree_with_the_checkpoint_are_one_clear_error(
        trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    for flags, named in ((["--backbone", "resnet34"], "--backbone resnet34"),
                         (["--size", "96x320"], "--size (96, 320)"),
                         (["--tasks", "depth"], "--tasks ['depth']"),
                         (["--preset", "paper"], "--preset paper")):
        with pytest.raises(SystemExit) as stop:
            cli_main(["export", "--checkpoint", str(trained / LATEST), "--out", str(out), *flags])
        message = str(stop.value.code)
        assert named in message and "drop those flags" in message, message
    assert not out.exists()


def test_export_of_a_checkpoint_that_does_not_fit_its_config_names_the_weights(
        trained: Path, tmp_path: Path) -> None:
    payload = load_checkpoint(trained / LATEST)
    payload["model_config"] = {**payload["model_config"], "tasks": ["depth"]}
    bad = save_checkpoint(tmp_path / "bad.pt", payload)
    with pytest.raises(SystemExit) as stop:
        cli_main(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "m.onnx")])
    message = str(stop.value.code)
    assert "does not fit this model" in message and "unexpected weights" in message, message
    assert len(message.splitlines()) == 1
