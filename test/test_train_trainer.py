"""The trainer on tiny synthetic bags: training lowers every task's loss, distillation pulls the
student towards a frozen teacher, resume is exact, and the steering and chain recipe kinds run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trainer_helpers import (ONLY_DISTILLATION, one_torch_thread, save_tiny_model,  # noqa: F401
                             tiny_bags, tiny_recipe, write_recipe)
from unified_perception.contract import CLASS_ID
from unified_perception.train.checkpoint import BEST, LATEST, CheckpointError, load_checkpoint
from unified_perception.train.losses.balancing import UNCERTAINTY_TASKS
from unified_perception.train.losses.distillation import DISTILLATION_TERMS
from unified_perception.train.recipe import load_recipe, parse_recipe
from unified_perception.train.steering_stage import FINAL_CHECKPOINT, RESULTS_JSON
from unified_perception.train.train_command import DONE_MARKER, run_recipe
from unified_perception.train.trainer import Trainer


def _first_and_last(results, name: str, count: int = 2) -> tuple[float, float]:
    values = [r.total if name == "total" else r.terms[name] for r in results]
    return sum(values[:count]) / count, sum(values[-count:]) / count


def test_steps_on_a_fixed_batch_lower_the_total_and_every_task_loss(
        tiny_bags: list[Path], tmp_path: Path) -> None:
    recipe = parse_recipe(tiny_recipe(tiny_bags, optim={"steps": 100},
                                      losses={"semantic_class_balance": 0.5}))
    trainer = Trainer(recipe, tmp_path / "run", progress=False)
    weights = trainer.loss_weights.semantic_class_weights     # counted on the training bags
    assert weights is not None and len(set(weights)) > 2
    batch = next(trainer.batches())
    results = [trainer.train_step(batch) for _ in range(16)]
    tasks = [name for name in UNCERTAINTY_TASKS if name in results[0].terms]
    assert set(tasks) == set(UNCERTAINTY_TASKS)          # every task of the model has a loss
    assert "flow_consistency" in results[0].terms         # and the motion terms are on
    for name in ["total", *tasks]:
        first, last = _first_and_last(results, name, count=3)
        assert last < first, (name, first, last)
    assert [r.step for r in results] == list(range(1, 17))


def _sees_cars(model: torch.nn.Module) -> None:
    """Raise the teacher's car logit so it labels things (offsets are distilled on its things)."""
    with torch.no_grad():
        model.panoptic.semantic_head.out.bias[CLASS_ID["car"]] += 3.0


def test_distillation_steps_reduce_the_student_teacher_distance(
        tiny_bags: list[Path], tmp_path: Path) -> None:
    teachers = {"depth": save_tiny_model(tmp_path / "t_depth.pt", ("depth",), seed=11),
                "segmentation": save_tiny_model(tmp_path / "t_seg.pt",
                                                ("semantic", "instance", "panoptic"), seed=12,
                                                edit=_sees_cars),
                "motion": save_tiny_model(tmp_path / "t_motion.pt",
                                          ("pose", "motion", "scene_flow"), seed=13)}
    recipe = parse_recipe(tiny_recipe(tiny_bags, losses=ONLY_DISTILLATION,
                                      teachers={k: str(v) for k, v in teachers.items()},
                                      optim={"steps": 100, "lr": 1e-4}))
    trainer = Trainer(recipe, tmp_path / "run", progress=False)
    teacher_before = {k: v.clone() for k, v in trainer.teacher.state_dict().items()}
    batch = next(trainer.batches())
    results = [trainer.train_step(batch) for _ in range(8)]
    assert set(results[0].terms) == set(DISTILLATION_TERMS)    # nothing but distillation
    for name in DISTILLATION_TERMS:
        first, last = _first_and_last(results, name)
        assert last < first, (name, first, last)
    for key, value in trainer.teacher.state_dict().items():    # the teacher stays frozen
        assert torch.equal(value, teacher_before[key]), key


def test_resume_after_two_of_four_steps_equals_four_uninterrupted_steps(
        tiny_bags: list[Path], tmp_path: Path) -> None:
    # weighted draws over two frame gaps, 3 batches per epoch: the resumed run restarts mid-epoch
    # and crosses an epoch boundary; the loader runs one worker process
    recipe = parse_recipe(tiny_recipe(tiny_bags, data={
        "datasets": [{"kind": "rosbag", "path": str(tiny_bags[0]), "weight": 1.0},
                     {"kind": "rosbag", "path": str(tiny_bags[1]), "weight": 2.0}],
        "frame_gaps": 2, "samples_per_epoch": 6, "workers": 1}, optim={"warmup_steps": 2}))
    Trainer(recipe, tmp_path / "whole", progress=False).run()
    Trainer(recipe, tmp_path / "halves", progress=False, max_steps=2).run()
    assert load_checkpoint(tmp_path / "halves" / LATEST)["step"] == 2
    Trainer(recipe, tmp_path / "halves", progress=False, resume=True).run()
    whole = load_checkpoint(tmp_path / "whole" / LATEST)
    halves = load_checkpoint(tmp_path / "halves" / LATEST)
    assert whole["step"] == halves["step"] == 4
    for key, value in whole["model"].items():
        assert torch.equal(value, halves["model"][key]), key
    assert whole["optimizer"]["state"].keys() == halves["optimizer"]["state"].keys()
    for index, state in whole["optimizer"]["state"].items():
        assert torch.equal(state["exp_avg_sq"], halves["optimizer"]["state"][index]["exp_avg_sq"])
    logged = [json.loads(line) for line in (tmp_path / "halves" / "train.jsonl").open()]
    expected = [json.loads(line) for line in (tmp_path / "whole" / "train.jsonl").open()]
    assert [r["total"] for r in logged] == [r["total"] for r in expected]


def test_steering_recipe_runs_the_steering_stage_on_a_student_checkpoint(
        tiny_bags: list[Path], tmp_path: Path) -> None:
    student = save_tiny_model(tmp_path / "student.pt", tuple(
        t for t in ("depth", "semantic", "instance", "panoptic", "motion", "scene_flow", "pose",
                    "steering")), seed=5)
    path = write_recipe(tmp_path, tiny_recipe(tiny_bags, name="tiny_steering", kind="steering",
                                              steering={"checkpoint": str(student),
                                                        "sequences": [str(b) for b in tiny_bags],
                                                        "modes": ["frozen"], "folds": 3,
                                                        "steps": 4, "batch_size": 4, "window": 4}))
    out = run_recipe(load_recipe(path), tmp_path / "steering", progress=False)
    results = json.loads((out / RESULTS_JSON).read_text())
    assert "frozen" in json.dumps(results)
    final = load_checkpoint(out / FINAL_CHECKPOINT)
    before = load_checkpoint(student)["model"]
    for key, value in before.items():
        if key.startswith("encoder."):
            assert torch.equal(value, final["model"][key]), key


def test_chain_runs_its_stages_in_order_and_resume_skips_the_finished_stage(
        tiny_bags: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    recipes = tmp_path / "recipes"
    steps = {"optim": {"steps": 2}}
    write_recipe(recipes, tiny_recipe(tiny_bags, name="stage_a", model={"tasks": ["depth"]},
                                      **steps))
    write_recipe(recipes, tiny_recipe(tiny_bags, name="stage_b", model={
        "tasks": ["depth"], "init_checkpoint": "{out}/stage_a/best.pt"}, **steps))
    chain = write_recipe(recipes, {"name": "tiny_chain", "kind": "chain",
                                   "stages": ["stage_a.yaml", "stage_b.yaml"]})
    out = tmp_path / "chain"
    run_recipe(load_recipe(chain), out, progress=False)
    for stage in ("stage_a", "stage_b"):
        assert (out / stage / DONE_MARKER).is_file() and (out / stage / BEST).is_file()
    assert load_checkpoint(out / "stage_b" / LATEST)["backbone_init"] == \
        f"checkpoint ({out / 'stage_a' / BEST})"
    finished = (out / "stage_a" / LATEST).stat().st_mtime_ns
    (out / "stage_b" / DONE_MARKER).unlink()             # as if stopped inside stage_b
    capsys.readouterr()
    run_recipe(load_recipe(chain), out, resume=True, progress=False)
    err = capsys.readouterr().err
    assert "stage stage_a already done" in err and "stage stage_b ->" in err
    assert (out / "stage_a" / LATEST).stat().st_mtime_ns == finished
    assert (out / "stage_b" / DONE_MARKER).is_file()


def test_a_frozen_encoder_from_another_checkpoint_stays_as_loaded_while_the_heads_train(
        tiny_bags: list[Path], tmp_path: Path) -> None:
    """model.init_encoder loads only the encoder (the checkpoint's heads are another preset's);
    model.freeze_encoder keeps its weights and batch-norm statistics while the heads learn."""
    def shifted_statistics(model: torch.nn.Module) -> None:
        with torch.no_grad():
            model.encoder.layer1[0].bn1.running_mean.fill_(0.3)
    source = save_tiny_model(tmp_path / "source.pt", ("depth", "semantic"), seed=5, edit=shifted_statistics)
    recipe = parse_recipe(tiny_recipe(tiny_bags, model={"preset": "paper", "tasks": ["depth", "semantic"],
                                                        "init_encoder": str(source),
                                                        "freeze_encoder": True},
                                      optim={"steps": 3}))
    trainer = Trainer(recipe, tmp_path / "run", progress=False)
    loaded = load_checkpoint(source)["model"]
    heads_before = {k: v.clone() for k, v in trainer.model.state_dict().items() if k.startswith("depth.")}
    batch = next(trainer.batches())
    for _ in range(3):
        trainer.train_step(batch)
    state = trainer.model.state_dict()
    for key, value in loaded.items():
        if key.startswith("encoder."):
            assert torch.equal(state[key], value), key
    assert any(not torch.equal(state[k], v) for k, v in heads_before.items())
    assert not any(p.requires_grad for p in trainer.model.encoder.parameters())
    assert "encoder of checkpoint" in trainer.backbone_init
    other_size = parse_recipe(tiny_recipe(tiny_bags, model={"input_width": 160, "init_encoder": str(source)}))
    with pytest.raises(CheckpointError, match="model.init_encoder needs resnet18 at 64x160"):
        Trainer(other_size, tmp_path / "run2", progress=False)
