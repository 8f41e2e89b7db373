"""config/car.yaml, the perception_node entry point, the launch file and the RViz layout.

The node is started as a separate process from config/car.yaml exactly as `ros2 run` / the launch
file start it (`--ros-args --params-file ...`), here with compressed transport.
"""

from __future__ import annotations

import array
import ast
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from lifecycle_msgs.msg import State
from lifecycle_msgs.srv import GetState
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from ros_helpers import CameraFeed, Recorder, RosSession, call, camera_info, stamp_now, \
    subprocess_env, wait_until
from unified_perception import topics
from unified_perception.ros.node import NODE_NAME
from unified_perception.ros.params import PARAMS
from unified_perception.runtime.model_files import fastdds_profile_environment

REPO = Path(__file__).resolve().parents[1]
CAR_YAML = REPO / "config" / "car.yaml"
LAUNCH = REPO / "launch" / "car.launch.py"
RVIZ = REPO / "rviz" / "unified_perception.rviz"


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _car_yaml_node_key() -> str:
    (key,) = yaml.safe_load(CAR_YAML.read_text()).keys()
    return key


def test_car_yaml_sets_every_declared_parameter_with_a_valid_value() -> None:
    params = _flatten(yaml.safe_load(CAR_YAML.read_text())[_car_yaml_node_key()]["ros__parameters"])
    assert set(params) == {p.name for p in PARAMS}
    kinds = {bool: bool, int: int, float: float, str: str, "str[]": list, "float[]": list}
    for spec in PARAMS:
        value = params[spec.name]
        assert type(value) is kinds[spec.kind], f"{spec.name}: {value!r} is not {spec.kind}"
        if spec.name != "model_path":
            assert spec.problem(value) is None, spec.problem(value)
    text = CAR_YAML.read_text()
    for spec in PARAMS:  # every parameter is commented: a comment line right above it
        leaf = spec.name.split(".")[-1]
        match = re.search(rf"\n(\s*#[^\n]*\n)+\s*{re.escape(leaf)}:", text)
        assert match, f"{spec.name} has no comment in car.yaml"


def test_car_yaml_reaches_the_node_in_any_namespace(tmp_path: Path) -> None:
    """The launch file's `namespace:=` pushes the node to /<ns>/unified_perception; the params file
    must still apply (a plain `unified_perception:` key only matches /unified_perception)."""
    tree = yaml.safe_load(CAR_YAML.read_text())
    tree[_car_yaml_node_key()]["ros__parameters"]["transport"] = "compressed"  # not the default
    params_file = tmp_path / "car.yaml"
    params_file.write_text(yaml.safe_dump(tree))
    for namespace in ("/", "/perception", "/car/sensors"):
        session = RosSession(["x", "--ros-args", "--params-file", str(params_file),
                              "-r", f"__ns:={namespace}"])
        try:
            from unified_perception.ros.node import PerceptionNode

            node = PerceptionNode(context=session.context)
            assert node.get_namespace() == namespace
            assert node.settings.transport == "compressed", namespace
            node.destroy_node()
        finally:
            session.close()


def _entry_point_command() -> list[str]:
    """The `perception_node` console script, or what setup.py registers it as."""
    installed = shutil.which("perception_node")
    if installed:
        return [installed]
    match = re.search(r'"perception_node\s*=\s*([\w.]+):(\w+)"', (REPO / "setup.py").read_text())
    assert match, "setup.py does not register the perception_node console script"
    module, func = match.groups()
    return [sys.executable, "-c",
            f"import sys; sys.argv[0] = 'perception_node'; from {module} import {func}; {func}()"]


def _jpeg(seed: int, stamp) -> CompressedImage:
    rgb = np.random.default_rng(seed).integers(0, 256, (96, 160, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    msg = CompressedImage(header=Header(stamp=stamp, frame_id="front_optical"), format="jpeg")
    msg.data = array.array("B", buf.tobytes())
    return msg


def test_node_started_from_car_yaml_with_the_entry_point_comes_up_active_and_publishes(
        tiny_model_path: Path, tmp_path: Path) -> None:
    log = (tmp_path / "node.log").open("w+")
    process = subprocess.Popen(
        [*_entry_point_command(), "--ros-args", "--params-file", str(CAR_YAML),
         "-p", f"model_path:={tiny_model_path}", "-p", "providers:=[cpu]",
         "-p", "warmup_runs:=0", "-p", "transport:=compressed"],
        cwd=REPO, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT)
    session = RosSession()
    try:
        tester = session.add(Node("launch_tester", context=session.context))
        state = wait_until(lambda: call(tester, GetState, f"/{NODE_NAME}/get_state",
                                        GetState.Request()).current_state.id
                           == State.PRIMARY_STATE_ACTIVE or process.poll() is not None,
                           60.0, "the node to become active")
        assert process.poll() is None, "the node exited"
        assert state
        recorder = Recorder(tester, [("front/depth", Image)])
        feed = CameraFeed(tester, "front", CompressedImage, topics.CAMERA_IMAGE_COMPRESSED)
        feed.wait_connected()
        for seed in range(40):
            msg = _jpeg(seed, stamp_now(tester))
            feed.send(msg, camera_info(160, 96, "front_optical"))
            try:
                depth = recorder.wait_for(
                    "front/depth", lambda m: m.header.stamp == msg.header.stamp, 1.5)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("the node never published depth")
        assert depth.encoding == "32FC1" and depth.header.frame_id == "front_optical"
    finally:
        session.close()
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        log.seek(0)
        output = log.read()
    assert code == 0, output
    assert "active: processing camera frames" in output


def _launch_arguments(tree: ast.Module) -> set[str]:
    return {call.args[0].value for call in ast.walk(tree)
            if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "DeclareLaunchArgument"}


def test_launch_file_parses_and_names_what_exists() -> None:
    tree = ast.parse(LAUNCH.read_text())
    assert {"params_file", "namespace", "model_path", "image_topic", "camera_info_topic",
            "use_sim_time", "autostart"} <= _launch_arguments(tree)
    constants = {t.id: n.value.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                 for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
    assert constants["EXECUTABLE"] == "perception_node"
    assert f'"{constants["EXECUTABLE"]} = ' in (REPO / "setup.py").read_text()
    assert constants["NODE_NAME"] == NODE_NAME
    assert constants["PACKAGE"] == "unified_perception"
    assert '"config", "car.yaml"' in LAUNCH.read_text() and CAR_YAML.is_file()
    assert "additional_env=fastdds_profile_environment()" in LAUNCH.read_text()   # DDS profile
    assert fastdds_profile_environment({}) == {
        "FASTDDS_DEFAULT_PROFILES_FILE": str(REPO / "config" / "fastdds_large_frames.xml")}
    assert fastdds_profile_environment({"FASTDDS_DEFAULT_PROFILES_FILE": "mine.xml"}) == {}
    assert "LifecycleNode" in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def test_launch_file_loads_with_launch_ros() -> None:
    pytest.importorskip("launch_ros")
    from launch import LaunchContext, LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.launch_description_sources import get_launch_description_from_python_launch_file

    description = get_launch_description_from_python_launch_file(str(LAUNCH))
    assert isinstance(description, LaunchDescription)
    names = {a.name for a in description.entities if isinstance(a, DeclareLaunchArgument)}
    assert {"params_file", "namespace", "model_path", "use_sim_time"} <= names
    context = LaunchContext()
    for action in description.entities:
        if isinstance(action, DeclareLaunchArgument):
            context.launch_configurations[action.name] = (
                str(CAR_YAML) if action.name == "params_file" else
                "front" if action.name == "camera" else
                "/cam/image" if action.name == "image_topic" else
                "false" if action.name in ("use_sim_time",) else
                "true" if action.name == "autostart" else "")
    opaque = next(a for a in description.entities if isinstance(a, OpaqueFunction))
    nodes = opaque.execute(context)
    assert len(nodes) == 1 and nodes[0].node_executable == "perception_node"


def test_rviz_layout_shows_every_output_in_the_odom_frame() -> None:
    config = yaml.safe_load(RVIZ.read_text())["Visualization Manager"]
    assert config["Global Options"]["Fixed Frame"] == "odom"
    shown = {d["Class"].split("/")[-1]: [] for d in config["Displays"]}
    for display in config["Displays"]:
        if "Topic" in display:
            shown[display["Class"].split("/")[-1]].append(display["Topic"]["Value"])
    wanted = {"Image": ["/front/image_raw", "/front/depth", "/front/semantic/color",
                        "/front/motion_mask"],
              "PointCloud2": ["/front/scene_flow/points"], "Odometry": ["/odometry"],
              "Path": ["/path"], "Marker": ["/steering/marker"]}
    for cls, names in wanted.items():
        assert sorted(shown[cls]) == sorted(names), cls
    published = {f"/front/{t.name}" for t in topics.OUTPUT_TOPICS if t.per_camera} | {
        f"/{t.name.lstrip('/')}" for t in topics.OUTPUT_TOPICS if not t.per_camera}
    for names in shown.values():
        assert all(n in published or n == "/front/image_raw" for n in names)


def test_node_subcommand_hands_ros_arguments_through() -> None:
    import argparse

    from unified_perception.ros import node_main

    parser = argparse.ArgumentParser()
    node_main.add_arguments(parser)
    args = parser.parse_args(["--ros-args", "--params-file", str(CAR_YAML), "-p", "model_path:=m"])
    assert args.ros_args == ["--params-file", str(CAR_YAML), "-p", "model_path:=m"]
    assert parser.parse_args([]).ros_args is None
