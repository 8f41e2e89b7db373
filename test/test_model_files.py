"""Where the shipped model is found: config/car.yaml, the node's default and the lookup of a bare
file name in the package's models folders (the checkout's models/, the installed share folder)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from unified_perception.ros.params import PARAM_BY_NAME
from unified_perception.runtime.model_files import (SHIPPED_MODEL, ModelLoadError,
                                                    existing_model_file, models_folders,
                                                    resolve_model_path, where_looked)

REPO = Path(__file__).resolve().parents[1]


def test_car_yaml_and_the_node_default_to_the_shipped_model() -> None:
    (section,) = yaml.safe_load((REPO / "config" / "car.yaml").read_text()).values()
    assert section["ros__parameters"]["model_path"] == SHIPPED_MODEL
    assert PARAM_BY_NAME["model_path"].default == SHIPPED_MODEL


def test_the_checkout_models_folder_is_looked_up_first() -> None:
    assert models_folders()[0] == REPO / "models"


def test_a_bare_name_is_looked_up_in_the_models_folders_in_order(tmp_path: Path,
                                                                monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
    (second / "m.onnx").write_bytes(b"x")
    assert resolve_model_path("m.onnx", [first, second]) == second / "m.onnx"
    (first / "m.onnx").write_bytes(b"x")
    assert resolve_model_path("m.onnx", [first, second]) == first / "m.onnx"
    (tmp_path / "m.onnx").write_bytes(b"x")          # the working directory comes first
    assert resolve_model_path("m.onnx", [first, second]) == Path("m.onnx")


def test_paths_with_a_folder_are_taken_as_given(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x")
    assert resolve_model_path("sub/m.onnx", [tmp_path]) == Path("sub/m.onnx")
    assert resolve_model_path("~/m.onnx", [tmp_path]) == Path(os.path.expanduser("~/m.onnx"))
    assert resolve_model_path("missing.onnx", [tmp_path]) == Path("missing.onnx")
    assert where_looked("/x/missing.onnx") == ""
    assert str(REPO / "models") in where_looked("missing.onnx")


def test_a_model_path_naming_no_file_is_one_message_saying_what_to_set(tmp_path: Path,
                                                                       monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.onnx").write_bytes(b"x")
    assert existing_model_file("m.onnx", [tmp_path / "none"]) == Path("m.onnx")
    with pytest.raises(ModelLoadError, match=r"model 'gone.onnx' is not a file; give an ONNX "
                                             r"model .*parameter model_path.*looked up in"):
        existing_model_file("gone.onnx", [tmp_path])
    with pytest.raises(ModelLoadError, match=r"model '' is not a file"):
        existing_model_file("", [tmp_path])
    with pytest.raises(ModelLoadError, match=r"is not a file"):
        existing_model_file(str(tmp_path), [tmp_path])      # a folder is no model file


def test_git_tracks_the_shipped_model_but_ignores_other_onnx_files_in_models() -> None:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", f"models/{SHIPPED_MODEL}", "models/other.onnx"],
        cwd=REPO, capture_output=True, text=True).stdout.split()
    assert ignored == ["models/other.onnx"]
