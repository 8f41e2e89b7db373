"""One source per fact: the parameter table of ros/params.py is the source of every default (car.yaml
and the runtime's own defaults agree with it), and topic / frame names live only in topics.py and
that table."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from pathlib import Path

import pytest
import yaml

from unified_perception import topics
from unified_perception.ros.params import PARAM_BY_NAME, PARAMS
from unified_perception.runtime.engine import EngineConfig
from unified_perception.runtime.providers import (ORT_NAMES, PROVIDERS, preference_problem,
                                                  select_providers)

REPO = Path(__file__).resolve().parents[1]
CAR_YAML = REPO / "config" / "car.yaml"

DOCUMENTED_OVERRIDES: dict[str, str] = {}
"""car.yaml values that differ from the table's default on purpose: parameter -> why. Add a key
here only together with a comment in car.yaml that says the same."""


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _car_yaml_values() -> dict:
    (node,) = yaml.safe_load(CAR_YAML.read_text()).values()
    return _flatten(node["ros__parameters"])


def test_every_car_yaml_value_is_the_table_default_or_a_documented_override() -> None:
    values = _car_yaml_values()
    assert set(values) == set(PARAM_BY_NAME), "car.yaml and the parameter table name other keys"
    differ = {name: (value, PARAM_BY_NAME[name].default) for name, value in values.items()
              if value != PARAM_BY_NAME[name].default and name not in DOCUMENTED_OVERRIDES}
    assert differ == {}, "car.yaml value != table default (value, default); change the table or " \
                         "document the override"
    for name in DOCUMENTED_OVERRIDES:
        assert values[name] != PARAM_BY_NAME[name].default, f"{name} is no override any more"


ENGINE_PARAMETERS = ("providers", "trt_fp16", "trt_cache_dir", "max_gap_s", "warmup_runs",
                     "intra_op_threads", "intra_op_spinning")
"""Parameters the node hands to :class:`EngineConfig` under the same name."""


@pytest.mark.parametrize("name", ENGINE_PARAMETERS)
def test_the_engine_defaults_are_the_parameter_table_defaults(name: str) -> None:
    default = {f.name: f.default for f in dataclasses.fields(EngineConfig)}[name]
    expected = PARAM_BY_NAME[name].default
    assert (list(default) if isinstance(default, tuple) else default) == expected


def test_the_provider_defaults_and_names_are_the_table_ones() -> None:
    signature = inspect.signature(select_providers).parameters
    assert signature["trt_fp16"].default == PARAM_BY_NAME["trt_fp16"].default
    assert signature["trt_cache_dir"].default == PARAM_BY_NAME["trt_cache_dir"].default
    spec = PARAM_BY_NAME["providers"]
    assert spec.default == list(PROVIDERS) and set(PROVIDERS) == set(ORT_NAMES)  # all, fastest first
    assert spec.check is preference_problem         # the parameter accepts what the engine accepts
    assert spec.problem(list(ORT_NAMES)) is None
    assert "vulkan" in spec.problem(["cpu", "vulkan"]) and spec.problem([]) is not None


NAME_LITERAL = re.compile(
    r"^/(camera|gt|replay|steering)(/|$)|^/(tf|tf_static|diagnostics|odometry|path|clock)$"
    r"|^(base_link|odom|camera_optical_frame|camera_link)$")
"""Absolute topic names and frame ids that only topics.py and the parameter table may spell out."""
SOURCES_OF_NAMES = {"unified_perception/topics.py", "unified_perception/ros/params.py"}


def _name_literals(path: Path, root: Path = REPO) -> list[str]:
    """String constants of ``path`` that look like a topic or frame name (docstrings excepted)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [f"{path.relative_to(root)}:{node.lineno} {node.value!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings and NAME_LITERAL.search(node.value)]


def test_no_topic_or_frame_name_is_spelled_out_outside_topics_and_the_parameter_table() -> None:
    files = [*sorted((REPO / "unified_perception").rglob("*.py")), *sorted((REPO / "launch").glob("*.py"))]
    found = [hit for path in files if path.relative_to(REPO).as_posix() not in SOURCES_OF_NAMES
             for hit in _name_literals(path)]
    assert found == [], "use unified_perception.topics (or the parameter table) for these names"


def test_the_table_takes_its_frame_names_from_topics() -> None:
    assert PARAM_BY_NAME["base_frame_id"].default == topics.BASE_FRAME
    assert PARAM_BY_NAME["odom_frame_id"].default == topics.ODOM_FRAME
    assert len(PARAMS) == len(PARAM_BY_NAME)


def test_the_name_scan_sees_a_planted_literal(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text('"""A docstring naming /camera/image_raw is fine."""\nTOPIC = "/camera/image_raw"\n'
                       'FRAME = f"{1}" + "base_link"\n')
    assert [hit.split(" ", 1)[1] for hit in _name_literals(planted, tmp_path)] == \
        ["'/camera/image_raw'", "'base_link'"]
