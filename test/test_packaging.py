"""The package installs the way the README and the car need: runtime without torch, train with the
pinned torch, and a colcon build that lays out share/ and lib/ as ROS 2 expects."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _resolved_distributions(extra: str, workdir: Path) -> dict[str, str]:
    """Resolve `pip install REPO[extra]` from scratch (dry run) and return {name: version}."""
    report = workdir / f"{extra}.json"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--report", str(report), f"{REPO}[{extra}]"],
        check=True, cwd=workdir, capture_output=True, text=True, timeout=600)
    installs = json.loads(report.read_text())["install"]
    return {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in installs}


def test_runtime_extra_installs_no_torch(tmp_path: Path) -> None:
    resolved = _resolved_distributions("runtime", tmp_path)
    assert "onnxruntime" in resolved and "numpy" in resolved
    heavy = [name for name in resolved if name == "torch" or name.startswith("nvidia-")]
    assert heavy == [], f"the runtime extra pulls {heavy}"


def test_train_extra_uses_torch_2_13(tmp_path: Path) -> None:
    resolved = _resolved_distributions("train", tmp_path)
    assert resolved["torch"].startswith("2.13.0")


def test_colcon_build_installs_share_and_node_executable(tmp_path: Path) -> None:
    colcon = shutil.which("colcon") or str(Path(sys.executable).with_name("colcon"))
    if not Path(colcon).exists():
        pytest.fail("colcon is not installed: `pip install colcon-common-extensions` (dev extra)")
    source = tmp_path / "src" / "unified_perception"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    for rel in tracked:
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, source / rel)
    result = subprocess.run([colcon, "build", "--base-paths", "src"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    prefix = tmp_path / "install" / "unified_perception"
    share = prefix / "share" / "unified_perception"
    assert (share / "package.xml").is_file()
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages"
            / "unified_perception").is_file()
    for folder in ("launch", "config", "rviz"):
        sources = sorted(p.name for p in (REPO / folder).iterdir() if p.is_file())
        assert sources, f"{folder}/ has no files to install"
        assert sorted(p.name for p in (share / folder).iterdir()) == sources
    assert (share / "models").is_dir()
    node = prefix / "lib" / "unified_perception" / "perception_node"
    assert node.is_file() and node.stat().st_mode & 0o111
