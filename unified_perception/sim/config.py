"""Parameters of one synthetic driving sequence.

All lengths in metres, angles in radians, times in seconds. The camera follows REP 103 / 105 for the
vehicle (``base_link``: x forward, y left, z up, origin on the ground under the rear axle) and the
optical convention for the camera (z forward, x right, y down).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


class SimConfigError(ValueError):
    """A simulation parameter is out of range. The message names the parameter and what to do."""


@dataclass(frozen=True)
class CameraConfig:
    """Pinhole intrinsics and the camera mounting on the car.

    ``fx_norm``/``fy_norm``/``cx_norm``/``cy_norm`` are normalised by the image width / height
    (KITTI-like defaults), so one config serves every resolution.
    """

    height: int = 192
    width: int = 640
    fx_norm: float = 0.58
    fy_norm: float = 1.92
    cx_norm: float = 0.5
    cy_norm: float = 0.5
    mount_x_m: float = 1.6
    """camera position in base_link (m): forward of the rear axle"""
    mount_y_m: float = 0.0
    mount_z_m: float = 1.55
    """camera height above the ground (m)"""
    pitch_rad: float = 0.02
    """downward tilt of the optical axis (rad, positive = looking down)"""


@dataclass(frozen=True)
class SimConfig:
    """Everything that defines one sequence; equal configs render identical frames."""

    seed: int = 0
    frames: int = 20
    fps: float = 10.0
    camera: CameraConfig = field(default_factory=CameraConfig)
    wheelbase_m: float = 2.7
    ego_speed_mps: tuple[float, float] = (7.0, 12.0)
    """range the ego speed is drawn from (m/s)"""
    lane_width_m: float = 3.5
    lanes_per_direction: int = 2
    lane_change_probability: float = 0.5
    """chance that the ego changes lane somewhere in the sequence"""
    traffic_density: float = 1.0
    """scales the number of moving cars (0 = none)"""
    parked_density: float = 1.0
    """scales the number of parked cars (0 = none)"""
    pedestrian_density: float = 1.0
    """scales the number of pedestrians (0 = none)"""
    max_distance_m: float = 160.0
    """objects farther than this from the camera are not drawn; the ground and sky always are"""
    time_offset_s: float = 0.0
    """time of frame 0; stamps are ``time_offset_s + k / fps``"""

    def validate(self) -> "SimConfig":
        """Raise :class:`SimConfigError` naming the first bad parameter; return self."""
        cam = self.camera
        checks = [
            (cam.height >= 8 and cam.width >= 8, "camera size", f"{cam.height}x{cam.width}",
             "use at least 8x8 pixels"),
            (cam.fx_norm > 0 and cam.fy_norm > 0, "focal length", f"{cam.fx_norm}, {cam.fy_norm}",
             "fx_norm and fy_norm must be positive"),
            (cam.mount_z_m > 0.2, "camera mount_z_m", cam.mount_z_m, "mount the camera above 0.2 m"),
            (abs(cam.pitch_rad) < 0.5, "camera pitch_rad", cam.pitch_rad, "keep |pitch| < 0.5 rad"),
            (self.frames >= 1, "frames", self.frames, "render at least one frame"),
            (self.fps > 0, "fps", self.fps, "use a positive frame rate"),
            (self.wheelbase_m > 0, "wheelbase_m", self.wheelbase_m, "use a positive wheelbase"),
            (0 < self.ego_speed_mps[0] <= self.ego_speed_mps[1] <= 40, "ego_speed_mps",
             self.ego_speed_mps, "give (min, max) with 0 < min <= max <= 40 m/s"),
            (2.0 <= self.lane_width_m <= 6.0, "lane_width_m", self.lane_width_m,
             "use a lane width between 2 and 6 m"),
            (1 <= self.lanes_per_direction <= 3, "lanes_per_direction", self.lanes_per_direction,
             "use 1 to 3 lanes per direction"),
            (0 <= self.lane_change_probability <= 1, "lane_change_probability",
             self.lane_change_probability, "use a probability in [0, 1]"),
            (min(self.traffic_density, self.parked_density, self.pedestrian_density) >= 0,
             "densities", (self.traffic_density, self.parked_density, self.pedestrian_density),
             "densities must be >= 0"),
            (self.max_distance_m > 10, "max_distance_m", self.max_distance_m, "use more than 10 m"),
        ]
        for ok, name, value, advice in checks:
            if not ok:
                raise SimConfigError(f"bad simulation parameter {name} = {value}: {advice}")
        return self

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (for bag metadata)."""
        return asdict(self)

