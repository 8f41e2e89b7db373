"""`unified-perception study` trains a missing run after the runs it starts from: the committed
synthetic recipes name those as teachers, initial weights or the pose and steering stages'
checkpoints."""

from __future__ import annotations

from pathlib import Path

from unified_perception.train.recipe import load_recipe
from unified_perception.train.study_command import checkpoints_read, comparison_table

RECIPES = Path(__file__).resolve().parents[1] / "config" / "train"


def _stages_read(recipe_file: str, runs: Path) -> list[str]:
    recipe = load_recipe(RECIPES / recipe_file, out_root=runs)
    paths = checkpoints_read(recipe)
    assert all(p.parent.parent == runs and p.name in ("best.pt", "pose.pt", "steering.pt")
               for p in paths), paths
    return sorted(p.parent.name for p in paths)


def test_each_synthetic_stage_names_the_stages_it_starts_from(tmp_path: Path) -> None:
    teachers = ["synthetic_teacher_depth", "synthetic_teacher_motion",
                "synthetic_teacher_segmentation"]
    assert _stages_read("synthetic_teacher_depth.yaml", tmp_path) == []
    assert _stages_read("synthetic_student.yaml", tmp_path) == teachers
    assert _stages_read("synthetic_student_no_distill.yaml", tmp_path) == []
    assert _stages_read("synthetic_pose.yaml", tmp_path) == ["synthetic_student"]
    assert _stages_read("synthetic_steering.yaml", tmp_path) == ["synthetic_pose"]
    assert _stages_read("synthetic_depth.yaml", tmp_path) == ["synthetic_steering"]
    assert _stages_read("synthetic_heads_light.yaml", tmp_path) == ["synthetic_student"]   # its encoder
    assert _stages_read("synthetic_heads_paper.yaml", tmp_path) == ["synthetic_student"]
    assert _stages_read("synthetic_heads_car.yaml", tmp_path) == ["synthetic_student"]
    assert _stages_read("synthetic_heads_light_panoptic.yaml", tmp_path) == ["synthetic_student"]
    assert _stages_read("synthetic_heads_light_panoptic_mid.yaml", tmp_path) == ["synthetic_student"]
    for stage in load_recipe(RECIPES / "synthetic_chain.yaml").stages:   # every stage file exists
        assert (RECIPES / stage).is_file()


def test_initial_weights_count_as_a_stage_read(tmp_path: Path) -> None:
    recipe_file = tmp_path / "continued.yaml"
    recipe_file.write_text('name: continued\nmodel:\n  init_checkpoint: "{out}/earlier/best.pt"\n')
    recipe = load_recipe(recipe_file, out_root=tmp_path / "runs")
    assert checkpoints_read(recipe) == [tmp_path / "runs" / "earlier" / "best.pt"]


def test_the_comparison_table_signs_the_change_by_which_way_is_better() -> None:
    results = {"light heads": {"metrics": {"depth": {"abs_rel": 0.101}, "semantic": {"miou": 0.495}}},
               "paper heads": {"metrics": {"depth": {"abs_rel": 0.100}, "semantic": {"miou": 0.500}}},
               "baseline": {"metrics": {"depth": {"abs_rel": 0.9}, "semantic": {}}}}
    table = comparison_table(results, ("light heads", "paper heads"), "T", reference="paper heads")
    assert "| task | metric | light heads | paper heads | light vs paper | baseline |" in table
    assert "| depth | AbsRel ↓ | 0.101 | **0.100** | -1.0% | 0.900 |" in table   # a higher error: worse
    assert "| semantic | mIoU ↑ | 0.495 | **0.500** | -1.0% | – |" in table


def test_the_comparison_table_gives_each_run_its_change_against_the_reference() -> None:
    results = {"car heads": {"metrics": {"depth": {"abs_rel": 0.095}}},
               "light heads": {"metrics": {"depth": {"abs_rel": 0.110}}},
               "paper heads": {"metrics": {"depth": {"abs_rel": 0.100}}},
               "baseline": {"metrics": {}}}
    table = comparison_table(results, ("car heads", "light heads", "paper heads"), "T",
                             reference="paper heads")
    assert "| car vs paper | light vs paper |" in table
    assert "| depth | AbsRel ↓ | **0.095** | 0.110 | 0.100 | +5.0% | -10.0% | – |" in table
