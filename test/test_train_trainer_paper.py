"""The paper-protocol recipes (config/train/paper_*.yaml): they say what the paper notes say, and a
teacher and the distilled student run two steps each on the KITTI raw and Cityscapes readers'
fixture data, with the recipe loader's overrides for data paths, size, batch and steps."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from test_data_cityscapes import write_cityscapes
from test_data_kitti import DATE, DRIVE, write_kitti
from trainer_helpers import REPO, one_torch_thread  # noqa: F401
from unified_perception.train.checkpoint import BEST, LATEST, load_checkpoint
from unified_perception.train.recipe import Recipe, load_recipe
from unified_perception.train.trainer import Trainer

RECIPES = REPO / "config" / "train"
TEACHERS = ("paper_teacher_depth", "paper_teacher_segmentation", "paper_teacher_motion")


@pytest.fixture()
def fixture_data(tmp_path: Path) -> dict[str, Path]:
    """The readers' tiny KITTI raw drive (4 frames) with a split file of its two centre frames,
    and a Cityscapes tree with the same snippet under train and val."""
    kitti = write_kitti(tmp_path / "kitti_raw")
    split = tmp_path / "train_files.txt"
    split.write_text(f"{DATE}/{DRIVE} 1 l\n{DATE}/{DRIVE} 2 l\n")
    cityscapes = write_cityscapes(tmp_path / "cityscapes", "train")
    write_cityscapes(cityscapes, "val")
    return {"kitti_raw": kitti, "kitti_split": split, "cityscapes": cityscapes}


def _on_fixture_data(entry: dict[str, Any], data: dict[str, Path]) -> dict[str, Any]:
    """A recipe's data set entry pointed at the fixture data, its other options kept."""
    entry = copy.deepcopy(entry)
    entry["path"] = str(data[entry["kind"]])
    options = entry.setdefault("options", {})
    if "split" in options and entry["kind"] == "kitti_raw":
        options["split"] = str(data["kitti_split"])
    if "drives" in options:
        options["drives"] = [DRIVE]
    return entry


def load_small(name: str, data: dict[str, Path], out_root: Path) -> Recipe:
    """A paper recipe at 64 x 128, batch 2, two steps, on the fixture data."""
    recipe = load_recipe(RECIPES / f"{name}.yaml", out_root=out_root)
    overrides = {
        "model": {"input_height": 64, "input_width": 128},
        "data": {"datasets": [_on_fixture_data(e, data) for e in recipe.data.datasets],
                 "val_datasets": [_on_fixture_data(e, data) for e in recipe.data.val_datasets],
                 "workers": 0},
        "optim": {"batch_size": 2, "steps": 2},
        "validation": {"max_frames": 2},
    }
    return load_recipe(RECIPES / f"{name}.yaml", overrides=overrides, out_root=out_root)


def test_paper_recipes_follow_the_paper_notes() -> None:
    chain = load_recipe(RECIPES / "paper_chain.yaml", out_root=Path("runs/paper"))
    assert [Path(s).stem for s in chain.stages] == [*TEACHERS, "paper_student"]
    student = load_recipe(RECIPES / "paper_student.yaml", out_root=Path("runs/paper"))
    model, optim, losses = student.model, student.optim, student.losses
    assert (model.backbone, model.preset, model.input_height, model.input_width) == \
        ("resnet50", "paper", 192, 640)
    assert model.imagenet_weights == Path("models/imagenet/resnet50.pth")
    assert model.imagenet_weights_optional
    assert (optim.batch_size, optim.steps, optim.lr, optim.weight_decay,
            optim.backbone_lr_scale) == (6, 200_000, 1e-4, 0.05, 0.1)
    assert (losses["motion_start_step"], losses["motion_ramp_steps"]) == (8000, 8000)
    assert {d["kind"] for d in student.data.datasets} == {"kitti_raw", "cityscapes"}
    assert {d["kind"] for d in student.data.val_datasets} == {"kitti_raw", "cityscapes"}
    assert student.teachers == {name.removeprefix("paper_teacher_"): Path(
        f"runs/paper/{name}/best.pt") for name in TEACHERS}
    for name in TEACHERS:
        teacher = load_recipe(RECIPES / f"{name}.yaml")
        assert teacher.model.model_config().input_height == model.input_height
        assert not teacher.teachers


def test_paper_teacher_and_distilled_student_take_two_steps_on_kitti_and_cityscapes(
        fixture_data: dict[str, Path], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    teacher = load_small("paper_teacher_depth", fixture_data, runs)
    Trainer(teacher, runs / teacher.name, progress=False).run()
    saved = load_checkpoint(runs / teacher.name / BEST)
    assert saved["step"] == 2 and saved["backbone_init"] in ("random", "ImageNet (resnet50.pth)")
    kinds = [d["kind"] for d in saved["data_summary"]["validation"]]
    assert kinds == ["kitti_raw", "cityscapes"]
    student = load_small("paper_student", fixture_data, runs)
    # one teacher; validation (the same held-out entries as the teacher's) off to spare a 1 GB best.pt
    student = dataclasses.replace(student, teachers={"depth": runs / teacher.name / BEST},
                                  data=dataclasses.replace(student.data, val_datasets=()))
    trainer = Trainer(student, runs / student.name, progress=False)
    trainer.run()
    assert load_checkpoint(runs / student.name / LATEST)["step"] == 2
    record = (runs / student.name / "train.jsonl").read_text().splitlines()[-1]
    assert '"distill_depth"' in record and '"semantic"' in record and '"photometric"' in record
