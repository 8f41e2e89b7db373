"""The dependency rule of docs/architecture.md, checked on every module's imports.

Every ``import`` and ``from ... import`` of every module is read with ``ast`` (imports inside
functions too), so a lazy import cannot slip past. Each part lists the third-party families and the
package parts it must never import; a violation names the file, the line and the rule.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "unified_perception"
LIVE_REPLAY = frozenset({"eval/replay_live.py", "eval/replay_recorder.py"})
"""The only eval/ modules that talk ROS (the live replay runs the node as a separate process)."""


@dataclass(frozen=True)
class Import:
    file: str           # relative to the package, e.g. "runtime/engine.py"
    line: int
    module: str         # absolute module name, e.g. "torch.nn" or "unified_perception.ros.params"


def _imports(path: Path, source: str | None = None) -> list[Import]:
    """Every import of the module at ``path`` (read from the file unless ``source`` is given)."""
    rel = path.relative_to(PACKAGE_ROOT)
    package = ["unified_perception", *rel.parent.parts]
    found = []
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(rel.as_posix(), node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if module == "unified_perception":    # `from unified_perception import topics`
                found += [Import(rel.as_posix(), node.lineno, f"{module}.{alias.name}")
                          for alias in node.names]
            else:
                found.append(Import(rel.as_posix(), node.lineno, module))
    return found


ALL_IMPORTS: list[Import] = [imp for path in sorted(PACKAGE_ROOT.rglob("*.py")) for imp in _imports(path)]


def _is_ros(module: str) -> bool:
    top = module.split(".")[0]
    return top in {"rclpy", "rcl_interfaces", "builtin_interfaces"} or top.endswith(("_msgs", "_srvs"))


def _part(module: str) -> str | None:
    """The package part a module belongs to (``runtime``, ``contract``...), None outside it."""
    names = module.split(".")
    return names[1] if names[0] == "unified_perception" and len(names) > 1 else None


def _third_party(module: str) -> str | None:
    top = module.split(".")[0]
    return None if top == "unified_perception" or top in sys.stdlib_module_names else top


def _violations(files: str, forbidden_parts: set[str], allowed_third_party: set[str] | None = None,
                no_torch: bool = True, no_ros: bool = True, exempt: frozenset[str] = frozenset()
                ) -> list[str]:
    """Imports of modules under ``files`` (a folder like ``runtime/`` or a file) that break the rule."""
    bad = []
    for imp in ALL_IMPORTS:
        if not imp.file.startswith(files) or imp.file in exempt:
            continue
        where = f"{imp.file}:{imp.line} imports {imp.module}"
        top = imp.module.split(".")[0]
        if no_torch and top == "torch":
            bad.append(f"{where} (torch is for train/ only)")
        if no_ros and _is_ros(imp.module):
            bad.append(f"{where} (ROS is for ros/ and the live replay only)")
        if _part(imp.module) in forbidden_parts:
            bad.append(f"{where} (this part must not depend on {_part(imp.module)}/)")
        third = _third_party(imp.module)
        if allowed_third_party is not None and third and third not in allowed_third_party:
            bad.append(f"{where} (allowed here: {sorted(allowed_third_party) or 'the standard library'})")
    return bad


OFFLINE_PARTS = {"train", "sim", "data", "eval"}


def test_contract_and_topics_use_only_the_standard_library() -> None:
    assert _violations("contract.py", {"runtime", "ros", *OFFLINE_PARTS}, set()) == []
    assert _violations("topics.py", {"runtime", "ros", *OFFLINE_PARTS}, set()) == []
    assert _violations("image_size.py", {"runtime", "ros", *OFFLINE_PARTS}, set()) == []
    assert _violations("transforms.py", {"runtime", "ros", *OFFLINE_PARTS}, {"numpy"}) == []


def test_runtime_imports_neither_torch_nor_ros_nor_other_parts() -> None:
    assert _violations("runtime/", {"ros", "topics", "bag_messages", "bag_output", *OFFLINE_PARTS},
                       {"numpy", "onnxruntime", "cv2", "ament_index_python"}) == []


def test_ros_imports_no_torch_and_no_offline_part() -> None:
    assert _violations("ros/", OFFLINE_PARTS, no_ros=False) == []


def test_train_never_imports_ros() -> None:
    assert _violations("train/", {"ros"}, no_torch=False) == []


def test_sim_and_data_import_neither_torch_nor_ros_nor_each_other() -> None:
    assert _violations("sim/", {"ros", "train", "data", "eval"}) == []
    assert _violations("data/", {"ros", "train", "sim", "eval"}) == []
    assert _violations("bag_messages.py", {"ros", *OFFLINE_PARTS}) == []
    assert _violations("bag_output.py", {"ros", *OFFLINE_PARTS}) == []


def test_eval_imports_no_torch_and_ros_only_for_live_replay() -> None:
    assert _violations("eval/", {"ros", "train"}, exempt=LIVE_REPLAY) == []
    assert _violations("eval/", {"ros", "train"}, no_ros=False) == []


def test_metrics_are_pure_numpy() -> None:
    assert _violations("eval/metrics/", {"runtime", "ros", "topics", "sim", "data", "train"},
                       {"numpy"}) == []
    outside = [f"{i.file}:{i.line} imports {i.module}" for i in ALL_IMPORTS
               if i.file.startswith("eval/metrics/") and _part(i.module) == "eval"
               and not i.module.startswith("unified_perception.eval.metrics")]
    assert outside == [], "eval/metrics/ may not use the report or replay modules of eval/"


def test_cli_imports_subcommands_only_when_they_run() -> None:
    assert _violations("cli.py", {"runtime", "ros", *OFFLINE_PARTS}, set()) == []


@pytest.mark.parametrize("source, rule, expected", [
    ("import torch\n", ("runtime/", {"ros"}), "torch is for train/ only"),
    ("def f():\n    from rclpy.node import Node\n", ("runtime/", set()), "ROS is for ros/"),
    ("from ..train import model\n", ("ros/", OFFLINE_PARTS), "must not depend on train/"),
    ("from unified_perception import eval\n", ("ros/", OFFLINE_PARTS), "must not depend on eval/"),
    ("import scipy.ndimage\n", ("eval/metrics/", set(), {"numpy"}), "allowed here"),
])
def test_the_checker_catches_forbidden_imports(monkeypatch: pytest.MonkeyPatch,
                                               source: str, rule: tuple, expected: str) -> None:
    """The scan itself: a planted forbidden import (top level, in a function, relative) is reported."""
    folder = rule[0].rstrip("/")
    planted = _imports(PACKAGE_ROOT / folder / "_planted_for_test.py", source)
    monkeypatch.setattr(sys.modules[__name__], "ALL_IMPORTS", planted)
    problems = _violations(*rule)
    assert len(problems) == 1 and expected in problems[0], problems
