"""Launch the unified_perception lifecycle node on the car.

    ros2 launch unified_perception car.launch.py       # the shipped model (config/car.yaml)
    ros2 launch unified_perception car.launch.py model_path:=/path/to/unified.onnx
    ros2 launch unified_perception car.launch.py namespace:=perception camera:=front \
        image_topic:=/sensors/front/image_raw camera_info_topic:=/sensors/front/camera_info

The node configures and activates itself (its ``autostart`` parameter, from the ``autostart``
argument); with ``autostart:=false`` it waits unconfigured for a lifecycle manager or
``ros2 lifecycle set``. Every node parameter is in the params file (default: the installed
config/car.yaml, whose model_path is the shipped model in share/unified_perception/models);
``model_path:=`` overrides the file's value when given.

Fast DDS: the node gets the installed ``config/fastdds_large_frames.xml`` (a 32 MiB shared-memory
segment) as ``FASTDDS_DEFAULT_PROFILES_FILE`` unless the environment already names a profile
(``unified_perception.runtime.model_files.fastdds_profile_environment``). One frame's outputs take
about 0.9 MB even at 96x320, more than the default 0.5 MB segment, and subscribers in other
processes (RViz, a recorder) otherwise lose some of them.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

from unified_perception.runtime.model_files import fastdds_profile_environment

PACKAGE = "unified_perception"
EXECUTABLE = "perception_node"
NODE_NAME = "unified_perception"


def _default_params_file() -> str:
    return os.path.join(get_package_share_directory(PACKAGE), "config", "car.yaml")


def _node(context: LaunchContext) -> list[LifecycleNode]:
    """The node with the arguments resolved (so an empty model_path does not override the file)."""
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    overrides: dict[str, object] = {
        "use_sim_time": arg("use_sim_time").lower() == "true",
        "autostart": arg("autostart").lower() == "true",
    }
    if arg("model_path"):
        overrides["model_path"] = os.path.expanduser(arg("model_path"))
    camera = arg("camera").strip("/")
    remappings = []
    if arg("image_topic"):
        remappings.append((f"{camera}/image_raw", arg("image_topic")))
        remappings.append((f"{camera}/image_raw/compressed", f"{arg('image_topic')}/compressed"))
    if arg("camera_info_topic"):
        remappings.append((f"{camera}/camera_info", arg("camera_info_topic")))
    return [LifecycleNode(
        package=PACKAGE, executable=EXECUTABLE, name=NODE_NAME, namespace=arg("namespace"),
        parameters=[arg("params_file"), overrides], remappings=remappings, output="screen",
        emulate_tty=True, additional_env=fastdds_profile_environment())]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=_default_params_file(),
                              description="YAML file with the node's parameters"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the node and all its relative topics"),
        DeclareLaunchArgument("model_path", default_value="",
                              description="ONNX model; empty = the params file's model_path (the "
                                          "shipped model)"),
        DeclareLaunchArgument("camera", default_value="front",
                              description="camera (from the params file's cameras) the topic "
                                          "remaps below apply to"),
        DeclareLaunchArgument("image_topic", default_value="",
                              description="remap <camera>/image_raw (and /compressed) to this "
                                          "topic; empty = no remap"),
        DeclareLaunchArgument("camera_info_topic", default_value="",
                              description="remap <camera>/camera_info to this topic; empty = no "
                                          "remap"),
        DeclareLaunchArgument("use_sim_time", default_value="false", choices=["true", "false"],
                              description="use /clock (bag replay, simulation)"),
        DeclareLaunchArgument("autostart", default_value="true", choices=["true", "false"],
                              description="configure and activate the node at start-up"),
        OpaqueFunction(function=_node),
    ])
