"""The synthetic driving world with exact ground truth for every task, written as ROS 2 bags.

Public API::

    from unified_perception.sim import SimConfig, CameraConfig, SyntheticWorld, render_sequence
    for frame in render_sequence(SimConfig(seed=0, frames=10)):   # SimFrame dataclasses
        frame.image_rgb, frame.depth_m, frame.scene_flow_m, frame.T_odom_base, ...

    from unified_perception.sim.bag_writer import write_bag          # frames -> ROS 2 bag (rosbags)
"""

from unified_perception.sim.config import CameraConfig, SimConfig, SimConfigError
from unified_perception.sim.world import SimFrame, SyntheticWorld, render_sequence

__all__ = ["CameraConfig", "SimConfig", "SimConfigError", "SimFrame", "SyntheticWorld",
           "render_sequence"]
