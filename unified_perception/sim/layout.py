"""World layout: where the road, the buildings, the street furniture and the traffic are.

Every object is anchored in road coordinates ``(s, d)`` and moves along the road at a constant
``speed_s_mps`` (0 = static). Its heading is the road heading at its ``s`` plus ``yaw_offset_rad``.
The parts of all objects are flattened into one :class:`PartTable` so that poses are evaluated for
all of them at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unified_perception.contract import PANOPTIC_LABEL_DIVISOR
from unified_perception.sim import objects
from unified_perception.sim.config import SimConfig, SimConfigError
from unified_perception.sim.geometry import planar_pose, rot_y
from unified_perception.sim.objects import Part
from unified_perception.sim.road import RoadCurve


@dataclass(frozen=True)
class CrossSection:
    """Lateral layout of the street (m, |d| from the centre line, the same on both sides)."""

    lane_width_m: float
    lanes_per_direction: int
    parking_width_m: float
    sidewalk_width_m: float

    @property
    def carriageway_half_m(self) -> float:
        return self.lane_width_m * self.lanes_per_direction

    @property
    def curb_m(self) -> float:
        return self.carriageway_half_m + self.parking_width_m

    @property
    def sidewalk_outer_m(self) -> float:
        return self.curb_m + self.sidewalk_width_m


@dataclass(frozen=True)
class ObjectTable:
    """Per object ``[O]`` arrays."""

    s0_m: np.ndarray
    d_m: np.ndarray
    speed_s_mps: np.ndarray
    yaw_offset_rad: np.ndarray
    instance: np.ndarray       # int32, 0 for stuff
    gait_hz: np.ndarray        # swing frequency of walking pedestrians, 0 otherwise
    radius_m: np.ndarray       # bounding radius for culling

    @property
    def moving(self) -> np.ndarray:
        return self.speed_s_mps != 0.0


@dataclass(frozen=True)
class PartTable:
    """Per part ``[Q]`` arrays (see :class:`objects.Part`)."""

    obj: np.ndarray            # int, owning object
    shape: np.ndarray          # int (primitives.Shape)
    half: np.ndarray           # [Q, 3]
    T_obj_part: np.ndarray     # [Q, 4, 4]
    material: np.ndarray       # int (materials.Material)
    color: np.ndarray          # [Q, 3] linear albedo
    class_id: np.ndarray       # uint8
    seed: np.ndarray           # int, texture seed
    swing_amp_rad: np.ndarray
    swing_pivot_z_m: np.ndarray
    swing_phase_rad: np.ndarray


@dataclass(frozen=True)
class Layout:
    cross_section: CrossSection
    objects: ObjectTable
    parts: PartTable

    def object_poses(self, road: RoadCurve, time_s: float) -> np.ndarray:
        """``T_world_obj`` ``[O, 4, 4]`` at ``time_s``."""
        o = self.objects
        xy, heading = road.point_at(o.s0_m + o.speed_s_mps * time_s, o.d_m)
        return planar_pose(xy[:, 0], xy[:, 1], heading + o.yaw_offset_rad)

    def part_poses(self, T_world_obj: np.ndarray, time_s: float, part_index: np.ndarray) -> np.ndarray:
        """``T_world_part`` ``[len(part_index), 4, 4]`` for the selected parts at ``time_s``."""
        p = self.parts
        obj = p.obj[part_index]
        angle = p.swing_amp_rad[part_index] * np.sin(
            2 * np.pi * self.objects.gait_hz[obj] * time_s + p.swing_phase_rad[part_index])
        swing = np.tile(np.eye(4), (len(part_index), 1, 1))
        R = rot_y(angle)
        pivot = np.zeros((len(part_index), 3))
        pivot[:, 2] = p.swing_pivot_z_m[part_index]
        swing[:, :3, :3] = R
        swing[:, :3, 3] = pivot - np.einsum("nij,nj->ni", R, pivot)
        return T_world_obj[obj] @ swing @ p.T_obj_part[part_index]


class _Builder:
    def __init__(self) -> None:
        self.obj_rows: list[tuple[float, float, float, float, int, float, float]] = []
        self.part_rows: list[tuple[int, Part]] = []
        self.next_instance = 1

    def add(self, parts: list[Part], s: float, d: float, speed: float = 0.0, yaw: float = 0.0,
            thing: bool = False, gait_hz: float = 0.0) -> None:
        instance = 0
        if thing:
            instance, self.next_instance = self.next_instance, self.next_instance + 1
        radius = max(float(np.linalg.norm(p.T_obj_part[:3, 3]) + np.linalg.norm(p.half)) for p in parts)
        index = len(self.obj_rows)
        self.obj_rows.append((s, d, speed, yaw, instance, gait_hz, radius))
        self.part_rows += [(index, p) for p in parts]

    def build(self, cross: CrossSection) -> Layout:
        o = np.array(self.obj_rows, dtype=np.float64).reshape(-1, 7)
        objs = ObjectTable(s0_m=o[:, 0], d_m=o[:, 1], speed_s_mps=o[:, 2], yaw_offset_rad=o[:, 3],
                           instance=o[:, 4].astype(np.int32), gait_hz=o[:, 5], radius_m=o[:, 6])
        rows = self.part_rows
        parts = PartTable(
            obj=np.array([i for i, _ in rows], dtype=np.int64),
            shape=np.array([int(p.shape) for _, p in rows], dtype=np.int64),
            half=np.array([p.half for _, p in rows], dtype=np.float64).reshape(-1, 3),
            T_obj_part=np.array([p.T_obj_part for _, p in rows]).reshape(-1, 4, 4),
            material=np.array([int(p.material) for _, p in rows], dtype=np.int64),
            color=np.array([p.color for _, p in rows], dtype=np.float64).reshape(-1, 3),
            class_id=np.array([p.class_id for _, p in rows], dtype=np.uint8),
            seed=np.arange(len(rows), dtype=np.int64) * 7919 + 17,
            swing_amp_rad=np.array([p.swing_amp_rad for _, p in rows], dtype=np.float64),
            swing_pivot_z_m=np.array([p.swing_pivot_z_m for _, p in rows], dtype=np.float64),
            swing_phase_rad=np.array([p.swing_phase_rad for _, p in rows], dtype=np.float64),
        )
        return Layout(cross, objs, parts)


def _roadside(b: _Builder, rng: np.random.Generator, road: RoadCurve, cross: CrossSection,
              side: int, s_from: float, s_to: float) -> None:
    """Buildings or green plots with trees, hedges, walls and fences along one side of the street."""
    s = s_from
    while s < s_to:
        kappa = np.abs(road.frame_at(np.array([s, s + 30.0]))[2]).max()
        max_len = float(np.clip(np.sqrt(8.0 * 0.8 / max(kappa, 1e-4)), 8.0, 30.0))
        if rng.random() < 0.65:
            length = rng.uniform(8.0, max_len)
            depth = rng.uniform(8.0, 16.0)
            setback = rng.uniform(0.8, 4.0)
            d = side * (cross.sidewalk_outer_m + setback + depth / 2)
            b.add(objects.building(rng, length, depth), s + length / 2, d)
            s += length + rng.uniform(0.0, 3.0)
        else:
            length = rng.uniform(10.0, 30.0)
            for s_tree in np.arange(s + rng.uniform(1, 5), s + length, rng.uniform(5.0, 9.0)):
                d = side * (cross.sidewalk_outer_m + rng.uniform(2.0, 12.0))
                b.add(objects.tree(rng), float(s_tree), d)
            border = rng.random()
            d_edge = side * (cross.sidewalk_outer_m + 0.6)
            seg = min(length, max_len)
            if border < 0.3:
                b.add(objects.hedge(rng, seg), s + seg / 2, d_edge)
            elif border < 0.5:
                b.add(objects.wall(rng, seg, fence=rng.random() < 0.5), s + seg / 2, d_edge)
            s += length
    # street trees and poles on the sidewalk near the curb
    d_furniture = side * (cross.curb_m + 0.5)
    yaw = 0.0 if side < 0 else np.pi  # face oncoming traffic of this side
    s = s_from + rng.uniform(0, 10)
    while s < s_to:
        r = rng.random()
        if r < 0.3:
            b.add(objects.tree(rng), s, side * (cross.curb_m + 0.9))
        elif r < 0.55:
            b.add(objects.street_pole(rng, "lamp"), s, d_furniture, yaw=yaw)
        elif r < 0.8:
            b.add(objects.street_pole(rng, "sign"), s, d_furniture, yaw=yaw)
        else:
            b.add(objects.street_pole(rng, "light"), s, d_furniture, yaw=yaw)
        s += rng.uniform(9.0, 25.0)


def _traffic(b: _Builder, rng: np.random.Generator, cfg: SimConfig, cross: CrossSection,
             ego_s0: float, ego_speed: float, duration_s: float, s_end: float) -> None:
    """Moving vehicles in every lane (never behind the ego in its direction) and parked cars."""
    w, n = cross.lane_width_m, cross.lanes_per_direction
    for lane in range(n):
        for direction in (1, -1):
            d = -direction * (lane + 0.5) * w
            if direction > 0:
                speed = ego_speed + rng.uniform(0.5, 4.0)
                s, s_stop = ego_s0 + rng.uniform(15.0, 30.0), s_end
            else:
                speed = -rng.uniform(6.0, 14.0)
                s, s_stop = ego_s0 - 20.0, s_end - speed * duration_s
            spacing = 35.0 / max(cfg.traffic_density, 1e-3)
            while s < s_stop and cfg.traffic_density > 0:
                kind = rng.choice(["car", "truck", "bus"], p=[0.86, 0.08, 0.06])
                parts = objects.vehicle(rng, str(kind))
                b.add(parts, s, d, speed=speed, yaw=0.0 if direction > 0 else np.pi,
                      thing=True)
                s += objects.vehicle_length(parts) + rng.uniform(0.4, 1.6) * spacing
    if cfg.parked_density > 0:
        for side in (-1, 1):
            s = ego_s0 - 20.0 + rng.uniform(0, 10)
            while s < s_end:
                parts = objects.vehicle(rng, "car")
                if rng.random() < 0.7:
                    b.add(parts, s, side * (cross.carriageway_half_m + cross.parking_width_m / 2),
                          yaw=0.0 if side < 0 else np.pi, thing=True)
                s += objects.vehicle_length(parts) + rng.exponential(6.0 / cfg.parked_density) + 0.8


def _pedestrians(b: _Builder, rng: np.random.Generator, cfg: SimConfig, cross: CrossSection,
                 s_from: float, s_to: float) -> None:
    count = rng.poisson(cfg.pedestrian_density * (s_to - s_from) / 12.0)
    for _ in range(count):
        side = rng.choice([-1, 1])
        s = rng.uniform(s_from, s_to)
        d = side * (cross.curb_m + rng.uniform(0.6, cross.sidewalk_width_m - 0.4))
        walking = rng.random() < 0.75
        if walking:
            speed = rng.uniform(0.9, 1.7) * rng.choice([-1, 1])
            b.add(objects.pedestrian(rng, True), s, d, speed=speed,
                  yaw=0.0 if speed > 0 else np.pi, thing=True, gait_hz=abs(speed) / 1.5)
        else:
            b.add(objects.pedestrian(rng, False), s, d, yaw=rng.uniform(-np.pi, np.pi), thing=True)


def build_layout(rng: np.random.Generator, cfg: SimConfig, road: RoadCurve, ego_s0: float,
                 ego_s_end: float, ego_speed: float, duration_s: float) -> Layout:
    """Populate the street around the ego's stretch of road ``[ego_s0, ego_s_end]``."""
    cross = CrossSection(lane_width_m=cfg.lane_width_m, lanes_per_direction=cfg.lanes_per_direction,
                         parking_width_m=rng.uniform(2.0, 2.5),
                         sidewalk_width_m=rng.uniform(2.5, 4.5))
    s_from = ego_s0 - 30.0
    s_to = ego_s_end + cfg.max_distance_m
    b = _Builder()
    for side in (-1, 1):
        _roadside(b, rng, road, cross, side, s_from, s_to)
    _traffic(b, rng, cfg, cross, ego_s0, ego_speed, duration_s, s_to)
    _pedestrians(b, rng, cfg, cross, s_from, s_to)
    things = b.next_instance - 1
    if things >= PANOPTIC_LABEL_DIVISOR:
        raise SimConfigError(
            f"this sequence would hold {things} cars and pedestrians, but panoptic ids "
            f"(class * {PANOPTIC_LABEL_DIVISOR} + instance) allow {PANOPTIC_LABEL_DIVISOR - 1} "
            f"instances: render fewer frames per sequence (several seeds instead of one long "
            f"drive) or lower the traffic / parked / pedestrian densities")
    return b.build(cross)

