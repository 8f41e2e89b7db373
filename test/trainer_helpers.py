"""Shared pieces of the trainer tests: tiny synthetic bags (rendered once per session), tiny recipes
written as YAML that extend nothing, tiny checkpoints, and the train command run in a subprocess.

Every test process runs torch on one thread: the machine's cores are shared, and oversubscribed
OpenMP threads make a step tens of times slower without changing its result."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import torch
import yaml
from torch import nn

from unified_perception.train.checkpoint import ModelConfig, save_checkpoint
from unified_perception.train.recipe import deep_merge
from unified_perception.train.synthetic_bags import render_synthetic_bags

BAG_SIZE = (64, 128)
BAG_FRAMES = 8
BAG_SEEDS = (1, 2, 3)          # the first two are trained on, the last is held out
REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"

ONLY_DISTILLATION = {name: 0.0 for name in (
    "photometric", "disparity_smoothness", "flow_smoothness", "flow_consistency",
    "motion_sparsity", "mask_smoothness", "semantic", "center_heatmap", "center_offset", "depth",
    "pose_translation", "pose_rotation", "scene_flow", "moving_flow", "motion_mask")}
"""``losses`` of a recipe that trains with the distillation terms alone."""


@pytest.fixture(scope="session")
def tiny_bags(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three 8-frame 64 x 128 synthetic bags (train, train, held out)."""
    return render_synthetic_bags(tmp_path_factory.mktemp("trainer_bags"), BAG_SEEDS, BAG_FRAMES,
                                 BAG_SIZE)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_recipe(bags: list[Path], name: str = "tiny", **sections: Any) -> dict[str, Any]:
    """A recipe mapping: all tasks at 64 x 128 (light heads), batch 2, 4 steps, no warmup, the motion
    terms on from step 0, validation on the held-out bag at the end only; ``sections`` are merged
    over it (a mapping merges key by key)."""
    values = {
        "name": name, "seed": 0,
        "model": {"backbone": "resnet18", "preset": "light", "input_height": BAG_SIZE[0],
                  "input_width": BAG_SIZE[1]},
        "data": {"datasets": [{"kind": "rosbag", "path": str(b)} for b in bags[:2]],
                 "val_datasets": [{"kind": "rosbag", "path": str(bags[2])}], "workers": 0},
        "optim": {"steps": 4, "batch_size": 2, "lr": 1e-3, "backbone_lr_scale": 1.0,
                  "warmup_steps": 0},
        "losses": {"motion_start_step": 0, "motion_ramp_steps": 0},
        "validation": {"every": 1000, "max_frames": 3},
        "log": {"every": 1, "images_every": 0, "checkpoint_every": 1000},
    }
    return deep_merge(values, copy.deepcopy(sections))


def write_recipe(folder: Path, values: dict[str, Any], file_name: str | None = None) -> Path:
    """``values`` as ``folder/<name>.yaml`` (or ``file_name``)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (file_name or f"{values['name']}.yaml")
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def save_tiny_model(path: Path, tasks: tuple[str, ...], seed: int = 0,
                    edit: Callable[[nn.Module], None] | None = None) -> Path:
    """A randomly initialised 64 x 128 light model of ``tasks`` (then changed by ``edit``) saved as a
    trainer-style checkpoint."""
    config = ModelConfig("resnet18", BAG_SIZE[0], BAG_SIZE[1], tuple(tasks), "light")
    model = config.build(seed=seed)
    if edit is not None:
        edit(model)
    return save_checkpoint(path, {"model": model.state_dict(), "model_config": config.to_dict()})


def one_thread_env() -> dict[str, str]:
    """The environment of a training subprocess: one OpenMP thread, the package importable."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def train_command(recipe: Path, out: Path, *extra: str) -> list[str]:
    """``python -m unified_perception.cli train --recipe R --out D --quiet ...`` of this venv."""
    return [sys.executable, "-m", "unified_perception.cli", "train", "--recipe", str(recipe),
            "--out", str(out), "--quiet", *extra]


def run_train(recipe: Path, out: Path, *extra: str, timeout: float = 300
              ) -> subprocess.CompletedProcess:
    return subprocess.run(train_command(recipe, out, *extra), capture_output=True, text=True,
                          env=one_thread_env(), cwd=REPO, timeout=timeout)
