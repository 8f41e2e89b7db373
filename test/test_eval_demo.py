"""`unified-perception demo` end to end on a tiny random model: a held-out drive rendered at the
model's input size, played live through the real node at the rate measured on this machine,
scored, and the headline printed with one row per task. Plus the user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unified_perception.cli import main as cli_main
from unified_perception.contract import Task
from unified_perception.eval.demo_command import DEFAULT_SEED, DemoError, check_held_out
from unified_perception.eval.headline import HEADLINE
from unified_perception.runtime.model_files import SHIPPED_MODEL, shipped_model_path

from conftest import TINY_HEIGHT, TINY_WIDTH

REPO = Path(__file__).resolve().parents[1]
FRAMES = 4


def test_demo_plays_a_held_out_drive_live_and_prints_the_report_headline(
        tiny_model_path: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    (out / "drive").mkdir(parents=True)             # a previous demo's leftovers are replaced
    (out / "drive" / "old.mcap").write_text("old")
    (out / "demo.json").write_text("{}")
    assert cli_main(["demo", "--model", str(tiny_model_path), "--out", str(out),
                     "--frames", str(FRAMES)]) == 0
    printed = capsys.readouterr().out
    assert "replacing the previous demo" in printed and not (out / "drive" / "old.mcap").exists()
    record = json.loads((out / "demo.json").read_text())
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert record["seed"] == DEFAULT_SEED and record["frames"] == FRAMES
    assert tuple(record["size_hw"]) == (TINY_HEIGHT, TINY_WIDTH)
    assert record["rate_chosen"] == "measured" and 0.0 < record["rate"] <= 1.0
    assert record["engine_latency"]["p50_ms"] > 0.0
    assert record["frames_in"] == metrics["frames"]["in"] == FRAMES
    assert record["frames_out"] == metrics["frames"]["out"]
    for name in ("summary.md", "montage.png", "montage.gif"):
        assert (out / "report" / name).is_file(), name
    for stage in range(1, 5):
        assert f"[{stage}/4]" in printed
    assert f"Report: {out / 'report'}/" in printed
    rows = [line for line in printed.splitlines() if line.startswith("| ")][1:]
    assert [row.split("|")[1].strip() for row in rows] == [m.task for m in HEADLINE]
    assert f"{metrics['frames']['dropped']} dropped" in printed


def test_a_folder_that_is_not_a_previous_demo_is_left_alone(tiny_model_path: Path,
                                                                     tmp_path: Path, capsys) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    assert cli_main(["demo", "--model", str(tiny_model_path), "--out", str(out)]) == 2
    assert "not a previous demo" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "keep"


def test_bad_options_and_a_missing_model_give_one_message(tmp_path: Path, capsys) -> None:
    assert cli_main(["demo", "--model", str(tmp_path / "none.onnx"), "--out", str(tmp_path / "o")]) == 2
    assert "none.onnx' is not a file" in capsys.readouterr().err
    assert cli_main(["demo", "--frames", "1", "--out", str(tmp_path / "o")]) == 2
    assert "--frames must be at least 2" in capsys.readouterr().err
    assert cli_main(["demo", "--rate", "0", "--out", str(tmp_path / "o")]) == 2
    assert "--rate must be a positive" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_without_the_shipped_model_the_demo_says_how_to_get_it(tmp_path: Path, capsys) -> None:
    if shipped_model_path() is not None:
        pytest.skip(f"{SHIPPED_MODEL} is present: the demo runs with it (test_shipped_model.py)")
    assert cli_main(["demo", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert SHIPPED_MODEL in err and "--model" in err and "scripts/ship_model.sh" in err
    assert str(REPO / "models") in err


def test_a_seed_the_model_was_trained_or_validated_on_is_refused() -> None:
    from unified_perception.contract import ModelMetadata
    from unified_perception.train.recipe import load_recipe

    recipe = load_recipe(REPO / "config" / "train" / "synthetic_student.yaml").to_dict()
    meta = ModelMetadata("1.0", tuple(Task), 96, 320, (0.58, 1.92, 0.5, 0.5), 0.1, 100.0,
                         training_recipe=recipe)
    synthetic = recipe["data"]["synthetic"]
    for seed in (synthetic["train_seeds"][0], synthetic["val_seeds"][0]):
        with pytest.raises(DemoError, match=f"seed {seed} is one of the model's training"):
            check_held_out(meta, seed)
    check_held_out(meta, DEFAULT_SEED)
