"""What the RViz markers show, independent of the message library that carries them.

The steering arrow: in base_link (x forward, y left, z up; REP 103) from the origin along the
steering direction, positive angle = left. Green while the command follows the network, amber while
the watchdog holds it. Built into ``visualization_msgs/Marker`` by ``ros/builders.py`` (rclpy) and
``bag_messages.py`` (rosbags).
"""

from __future__ import annotations

import math
from typing import NamedTuple

STEERING_MARKER_NS = "unified_perception/steering"


class SteeringArrow(NamedTuple):
    """Arrow geometry and colour. Lengths in metres, colour channels in [0, 1]."""

    tip_xy_m: tuple[float, float]                 # arrow tip in base_link; the tail is the origin
    scale_xyz_m: tuple[float, float, float]       # shaft diameter, head diameter, head length
    rgba: tuple[float, float, float, float]


def steering_arrow(angle_rad: float, held: bool, length_m: float = 3.0) -> SteeringArrow:
    """The arrow of a steering command ``angle_rad`` (rad, positive left)."""
    tip = (length_m * math.cos(angle_rad), length_m * math.sin(angle_rad))
    rgba = (1.0, 0.7, 0.0, 1.0) if held else (0.1, 0.9, 0.2, 1.0)
    return SteeringArrow(tip, (0.15, 0.3, 0.4), rgba)
