"""Shipping a trained model: scripts/ship_model.sh exports a checkpoint with fp16 weights, runs the
demo with it and writes the model card; `model-card` reads everything it states from the model,
the checkpoint, the chain recipe and the demo report.

The checkpoint is a tiny random model saved the way the trainer saves one (save_checkpoint +
ModelConfig, the real student recipe, a data summary of the trainer's layout)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import onnx
import pytest

from ros_helpers import subprocess_env
from unified_perception.cli import main as cli_main
from unified_perception.contract import ModelMetadata
from unified_perception.train.checkpoint import ModelConfig, save_checkpoint
from unified_perception.train.export_fp16 import weights_stored_fp16
from unified_perception.train.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
CHAIN = REPO / "config" / "train" / "synthetic_chain.yaml"
UP = REPO / ".venv" / "bin" / "unified-perception"
HEIGHT, WIDTH = 64, 128


def _dataset(seed: int) -> dict:
    return {"kind": "rosbag", "path": f"data/synthetic/synth_seed{seed}_120f_96x320", "samples": 118,
            "frames": 120, "offsets": [-1, 0, 1], "native_size": [96, 320], "size": [HEIGHT, WIDTH],
            "ground_truth": ["depth", "semantic", "steering"]}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = ModelConfig("resnet18", HEIGHT, WIDTH, preset="light")
    summary = {"train": {"datasets": [{"entry": 0, "frame_gap": 1, "weight": 1.0, **_dataset(1)},
                                      {"entry": 1, "frame_gap": 1, "weight": 1.0, **_dataset(2)}],
                         "samples": 236, "frame_gaps": 2, "size": [HEIGHT, WIDTH]},
               "validation": [_dataset(100)]}
    payload = {"model": config.build(seed=0).state_dict(), "model_config": config.to_dict(),
               "recipe": load_recipe(REPO / "config/train/synthetic_student.yaml").to_dict(),
               "data_summary": summary, "intrinsics_normalized": [0.58, 1.92, 0.5, 0.5],
               "step": 800, "backbone_init": "random",
               "steering_stage": {"config": {"modes": ["frozen"]}, "final_loss_deg2": 2.5}}
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "steering.pt", payload)


def test_ship_script_exports_fp16_runs_the_demo_and_writes_the_card(checkpoint: Path,
                                                                    tmp_path: Path) -> None:
    if not UP.is_file():
        pytest.skip(f"scripts/ship_model.sh runs {UP}: set up the checkout with scripts/setup_env.sh")
    model, demo = tmp_path / "shipped.onnx", tmp_path / "demo"
    done = subprocess.run(["bash", str(REPO / "scripts" / "ship_model.sh"), "--checkpoint",
                           str(checkpoint), "--model", str(model), "--demo", str(demo),
                           "--frames", "3"], cwd=REPO, env=subprocess_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    proto = onnx.load(str(model))
    assert weights_stored_fp16(proto)
    meta = ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props})
    assert meta.training_recipe["name"] == "synthetic_student"
    card = model.with_suffix(".md").read_text()
    assert f"{model.stat().st_size / 1e6:.1f} MB on disk, float16 weights" in card
    assert f"{meta.head_gflops['total']:.2f} GFLOPs per frame at {HEIGHT}x{WIDTH}" in card
    assert re.search(r"## CPU latency\n\np50 \d+ ms, p95 \d+ ms", card)
    for stage in load_recipe(CHAIN).stages:
        assert f"| {load_recipe(CHAIN.parent / stage).name} |" in card
    assert "step 800" in card and "final loss 2.5 deg²" in card
    assert "| train | `data/synthetic/synth_seed2_120f_96x320` (rosbag) | 120 |" in card
    assert "| validation | `data/synthetic/synth_seed100_120f_96x320`" in card
    metrics = json.loads((demo / "report" / "metrics.json").read_text())
    abs_rel, baseline = metrics["depth"]["abs_rel"], metrics["baselines"]["depth"]["abs_rel"]
    assert f"| depth | AbsRel | {abs_rel:.3f} | {baseline:.3f} | ≤ 0.5 × baseline |" in card
    assert "3 played" in card and "(baseline: mean depth" in card


def test_the_card_without_a_demo_says_how_to_add_one(tiny_model_path: Path, tmp_path: Path,
                                                     monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)                 # no out/demo here
    out = tmp_path / "card.md"
    assert cli_main(["model-card", "--model", str(tiny_model_path), "--latency-frames", "2",
                     "--out", str(out)]) == 0
    card = out.read_text()
    assert "Not run yet: `unified-perception demo`" in card
    assert "recipe `untrained (random initialisation)`" in card
    assert cli_main(["model-card", "--model", str(tiny_model_path), "--demo",
                     str(tmp_path / "nothing")]) == 2
    assert "holds no finished demo" in capsys.readouterr().err
