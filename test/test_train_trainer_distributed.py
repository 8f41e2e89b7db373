"""The train command under `torchrun --nproc_per_node 2` (gloo on CPU): two synchronised steps,
identical weights on both ranks, one checkpoint and one log written by rank 0."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from trainer_helpers import (REPO, VENV_BIN, one_thread_env, one_torch_thread,  # noqa: F401
                             tiny_bags, tiny_recipe, write_recipe)
from unified_perception.train.checkpoint import LATEST, ModelConfig, load_checkpoint
from unified_perception.train.distributed import state_digest


def test_torchrun_two_ranks_take_two_steps_to_identical_weights_and_one_checkpoint(
        tiny_bags: list[Path], tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, tiny_recipe(tiny_bags, optim={"steps": 2},
                                                data={"val_datasets": []}))
    out = tmp_path / "out"
    done = subprocess.run(
        [str(VENV_BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m",
         "unified_perception.cli", "train", "--recipe", str(recipe), "--out", str(out), "--quiet"],
        capture_output=True, text=True, env=one_thread_env(), cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    replicas = json.loads((out / "replicas.json").read_text())
    assert replicas["world_size"] == 2 and replicas["step"] == 2
    rank0, rank1 = replicas["parameter_sha256"]
    assert rank0 == rank1
    saved = load_checkpoint(out / LATEST)
    assert saved["step"] == 2
    model = ModelConfig.from_dict(saved["model_config"]).build()
    model.load_state_dict(saved["model"])
    assert state_digest(model.named_parameters()) == rank0      # the checkpoint holds those weights
    initial = ModelConfig.from_dict(saved["model_config"]).build(seed=0)
    assert state_digest(initial.named_parameters()) != rank0    # and they were trained
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".pt") == [LATEST]
    logged = [json.loads(line)["step"] for line in (out / "train.jsonl").open()]
    assert logged == [1, 2]                                      # one writer
