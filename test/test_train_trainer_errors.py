"""Bad input to `unified-perception train` gets one clear message and loses nothing: a mistyped
recipe key, a missing data path, checkpoints of another architecture, a full disk and an
interrupted run (the last checkpoint survives and resumes)."""

from __future__ import annotations

import errno
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

import unified_perception.train.checkpoint as checkpoint_module
from trainer_helpers import (REPO, one_thread_env, one_torch_thread, save_tiny_model,  # noqa: F401
                             tiny_bags, tiny_recipe, train_command, write_recipe)
from unified_perception.cli import main as cli_main
from unified_perception.train.checkpoint import LATEST, load_checkpoint
from unified_perception.train.recipe import load_recipe
from unified_perception.train.train_command import run_recipe


def _train(recipe: Path, out: Path, capsys: pytest.CaptureFixture, *extra: str
           ) -> tuple[int, list[str]]:
    """Exit code and the non-empty stderr lines of ``train`` run in this process."""
    capsys.readouterr()
    code = cli_main(["train", "--recipe", str(recipe), "--out", str(out), "--quiet", *extra])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _one_line(code: int, lines: list[str], *parts: str) -> None:
    """Exit code 2 and one line on stderr that says each of ``parts``."""
    assert code == 2 and len(lines) == 1, lines
    message = lines[0]
    assert message.startswith("unified-perception train: "), message
    for part in parts:
        assert part in message, (part, message)


def test_a_mistyped_recipe_key_is_named_and_nothing_is_written(
        tiny_bags: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    recipe = write_recipe(tmp_path, tiny_recipe(tiny_bags, optim={"lrate": 1e-3}))
    code, message = _train(recipe, tmp_path / "out", capsys)
    _one_line(code, message, "optim.lrate", "valid keys of optim", "lr")
    assert not (tmp_path / "out").exists()


def test_a_missing_data_path_is_named(tiny_bags: list[Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    values = tiny_recipe(tiny_bags)
    values["data"]["datasets"][1]["path"] = str(tmp_path / "no_such_bag")
    code, message = _train(write_recipe(tmp_path, values), tmp_path / "out", capsys)
    _one_line(code, message, str(tmp_path / "no_such_bag"), "does not exist")
    assert not (tmp_path / "out").exists()


def test_an_init_checkpoint_of_other_tasks_is_one_message(
        tiny_bags: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    depth_only = save_tiny_model(tmp_path / "depth.pt", ("depth",))
    recipe = write_recipe(tmp_path, tiny_recipe(tiny_bags, model={
        "init_checkpoint": str(depth_only)}))
    code, message = _train(recipe, tmp_path / "out", capsys)
    _one_line(code, message, str(depth_only), "holds another model", "tasks [depth] (wanted",
              "init_checkpoint")
    assert not (tmp_path / "out").exists()


def test_a_teacher_of_other_tasks_is_one_message(tiny_bags: list[Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    segmentation = save_tiny_model(tmp_path / "seg.pt", ("semantic", "instance", "panoptic"))
    steering = save_tiny_model(tmp_path / "steer.pt", ("steering",))
    wrong_group = write_recipe(tmp_path, tiny_recipe(tiny_bags, name="a",
                                                     teachers={"depth": str(segmentation)}))
    code, message = _train(wrong_group, tmp_path / "out", capsys)
    _one_line(code, message, "teachers.depth", str(segmentation), "not a depth teacher")
    no_shared_task = write_recipe(tmp_path, tiny_recipe(tiny_bags, name="b", model={
        "tasks": ["depth"]}, teachers={"extra": str(steering)}))
    code, message = _train(no_shared_task, tmp_path / "out", capsys)
    _one_line(code, message, "teachers.extra", "none of the student's ['depth']")
    assert not (tmp_path / "out").exists()


def test_a_full_disk_stops_the_run_and_keeps_the_previous_checkpoint(
        tiny_bags: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_save = torch.save
    saves = []

    def save_until_the_disk_fills(obj, handle, *args, **kwargs) -> None:
        saves.append(1)
        if len(saves) == 1:
            return real_save(obj, handle, *args, **kwargs)
        handle.write(b"\0" * 1024)                 # part of the file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", save_until_the_disk_fills)
    recipe = write_recipe(tmp_path, tiny_recipe(tiny_bags, data={"val_datasets": []},
                                                log={"checkpoint_every": 1}, optim={"steps": 3}))
    out = tmp_path / "out"
    code, message = _train(recipe, out, capsys)
    _one_line(code, message, "No space left on device", f"previous {LATEST} is intact",
              "--resume")
    monkeypatch.undo()
    assert load_checkpoint(out / LATEST)["step"] == 1
    assert sorted(p.name for p in out.glob("*.pt*")) == [LATEST]          # no partial file left
    code, _ = _train(recipe, out, capsys, "--resume")
    assert code == 0 and load_checkpoint(out / LATEST)["step"] == 3


def test_an_interrupted_run_saves_latest_and_resumes(tiny_bags: list[Path], tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, tiny_recipe(tiny_bags, data={"val_datasets": []},
                                                log={"checkpoint_every": 1},
                                                optim={"steps": 10_000}))
    out = tmp_path / "out"
    process = subprocess.Popen(train_command(recipe, out), env=one_thread_env(), cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / LATEST).is_file() and process.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (out / LATEST).is_file(), process.communicate(timeout=5)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    lines = [line for line in err.splitlines() if line.strip()]
    assert process.returncode == 2, err
    assert "interrupted at step" in lines[-1] and "--resume" in lines[-1], err
    step = load_checkpoint(out / LATEST)["step"]
    assert 1 <= step < 10_000
    run_recipe(load_recipe(recipe), out, resume=True, max_steps=step + 1, progress=False)
    assert load_checkpoint(out / LATEST)["step"] == step + 1
