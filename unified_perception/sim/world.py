"""The synthetic driving world: build it from a :class:`SimConfig`, render frames with ground truth.

Frames (``odom`` = the world frame re-anchored so that ``base_link`` of frame 0 is the identity):

* ``T_odom_base``: REP 105 odometry pose of ``base_link`` (rear axle centre on the ground, x forward,
  y left, z up). The world is flat, so poses are planar.
* ``T_base_cam``: the camera optical frame (z forward, x right, y down) in ``base_link``.
* Depth is along optical z, in metres; sky pixels have depth ``+inf`` (REP 118: too far to measure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from unified_perception.sim import ground_truth as gt
from unified_perception.sim import shading
from unified_perception.sim.camera import PinholeCamera
from unified_perception.sim.config import SimConfig
from unified_perception.sim.geometry import camera_extrinsic
from unified_perception.transforms import invert_transform
from unified_perception.sim.layout import Layout, build_layout
from unified_perception.sim.materials import GROUND_PRIM, SKY_PRIM
from unified_perception.sim.raycast import HitBuffer, cast_rays
from unified_perception.sim.shadows import ground_shadow
from unified_perception.sim.road import RoadCurve, build_road
from unified_perception.sim.trajectory import EgoPath, build_ego_path, plan_lateral_offset


@dataclass(frozen=True)
class SimFrame:
    """One rendered frame with its ground truth. Images are ``[H, W]`` / ``[H, W, C]``."""

    index: int
    stamp_s: float
    image_rgb: np.ndarray       # [H, W, 3] uint8
    depth_m: np.ndarray         # [H, W] float32, optical z, +inf on sky
    semantic: np.ndarray        # [H, W] uint8, Cityscapes train ids (contract.CLASSES)
    instances: np.ndarray       # [H, W] int32, 0 = none (stuff); unique per object over the sequence
    panoptic: np.ndarray        # [H, W] int32, class * 1000 + instance
    motion_mask: np.ndarray     # [H, W] bool, independently moving
    scene_flow_m: np.ndarray    # [H, W, 3] float32, independent motion t-1 -> t, optical frame of t
    T_odom_base: np.ndarray     # [4, 4] float64
    T_base_cam: np.ndarray      # [4, 4] float64
    K: np.ndarray               # [3, 3] float64
    steering_rad: float         # front-wheel angle, positive left: atan(wheelbase * curvature)
    curvature_inv_m: float      # path curvature of base_link (1/m, positive left)
    speed_mps: float            # forward speed of base_link (m/s)
    yaw_rate_rps: float         # rad/s, positive left (speed * curvature)


SHADOW_CASTER_BEHIND_M = 25.0
"""objects up to this far behind the camera are kept: their shadows can reach into view"""


class SyntheticWorld:
    """A procedurally generated street, its traffic and the ego's drive through it."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config.validate()
        rng = np.random.default_rng(config.seed)
        self.camera = PinholeCamera.from_config(config.camera)
        cam = config.camera
        self.T_base_cam = camera_extrinsic((cam.mount_x_m, cam.mount_y_m, cam.mount_z_m), cam.pitch_rad)
        self.dt = 1.0 / config.fps
        self.duration_s = (config.frames - 1) * self.dt
        speed = float(rng.uniform(*config.ego_speed_mps))
        ego_s_end = speed * self.duration_s * 1.1 + 20.0
        road_len = ego_s_end + config.max_distance_m + 16.0 * self.duration_s + 80.0
        self.road: RoadCurve = build_road(rng, road_len)
        s_grid = self.road.s[(self.road.s >= -50.0) & (self.road.s <= ego_s_end + 30.0)]
        d_of_s, _, self.lane_change = plan_lateral_offset(
            rng, s_grid, 0.0, ego_s_end, config.lanes_per_direction, config.lane_width_m,
            config.lane_change_probability, change_length_m=max(4.0 * speed, 25.0))
        self.ego: EgoPath = build_ego_path(self.road, d_of_s, s_grid, 0.0, speed, config.wheelbase_m)
        self.layout: Layout = build_layout(rng, config, self.road, 0.0, ego_s_end, speed, self.duration_s)
        self.lighting = shading.random_lighting(rng)
        T_world_base0, _, _, _ = self.ego.state_at(0.0)
        self.T_odom_world = invert_transform(T_world_base0)

    # -----------------------------------------------------------------------------------------
    def frame_time(self, index: int) -> float:
        """Seconds after frame 0."""
        return index * self.dt

    def _visible_parts(self, time_s: float, T_world_cam: np.ndarray) -> tuple[np.ndarray, gt.VisibleParts]:
        lay = self.layout
        T_obj = lay.object_poses(self.road, time_s)
        rel = T_obj[:, :2, 3] - T_world_cam[:2, 3]
        forward = T_world_cam[:2, 2] / max(np.linalg.norm(T_world_cam[:2, 2]), 1e-9)
        near = np.linalg.norm(rel, axis=1) < self.config.max_distance_m + lay.objects.radius_m
        ahead = rel @ forward > -lay.objects.radius_m - SHADOW_CASTER_BEHIND_M
        keep_obj = near & ahead
        index = np.flatnonzero(keep_obj[lay.parts.obj])
        T_now = lay.part_poses(T_obj, time_s, index)
        T_prev = lay.part_poses(lay.object_poses(self.road, time_s - self.dt), time_s - self.dt, index)
        obj = lay.parts.obj[index]
        visible = gt.VisibleParts(
            class_id=lay.parts.class_id[index], instance=lay.objects.instance[obj],
            moving=lay.objects.moving[obj], T_world_part=T_now, T_world_part_prev=T_prev)
        return index, visible

    def render(self, index: int) -> SimFrame:
        """Render frame ``index`` (any integer; frames need not be rendered in order)."""
        t = self.frame_time(index)
        T_world_base, kappa, steering, _ = self.ego.state_at(t)
        T_world_cam = T_world_base @ self.T_base_cam
        part_index, parts = self._visible_parts(t, T_world_cam)
        lay = self.layout
        hits = cast_rays(self.camera, T_world_cam, parts.T_world_part, lay.parts.shape[part_index],
                         lay.parts.half[part_index])

        rays_world = self.camera.rotated_rays(T_world_cam[:3, :3])
        finite = np.isfinite(hits.depth_m)
        points = T_world_cam[:3, 3] + np.where(finite, hits.depth_m, 0.0)[..., None] * rays_world

        ground = hits.prim == GROUND_PRIM
        s, d = self.road.to_road_frame(points[ground][:, :2])
        semantic, instances, panoptic, motion = gt.labels(
            hits, parts, gt.ground_classes(d, lay.cross_section))
        R_cam_world = T_world_cam[:3, :3].T
        flow = gt.scene_flow(hits, parts, points, R_cam_world)
        image = self._shade(hits, part_index, parts, T_world_cam, rays_world, ground, s, d, points)

        T_odom_base = self.T_odom_world @ T_world_base
        speed = self.ego.speed_mps
        return SimFrame(
            index=index, stamp_s=self.config.time_offset_s + t, image_rgb=image,
            depth_m=hits.depth_m.astype(np.float32), semantic=semantic, instances=instances,
            panoptic=panoptic, motion_mask=motion, scene_flow_m=flow, T_odom_base=T_odom_base,
            T_base_cam=self.T_base_cam.copy(), K=self.camera.K.copy(), steering_rad=float(steering),
            curvature_inv_m=float(kappa), speed_mps=float(speed), yaw_rate_rps=float(speed * kappa))

    def _shade(self, hits: HitBuffer, part_index: np.ndarray, parts: gt.VisibleParts,
               T_world_cam: np.ndarray, rays_world: np.ndarray, ground: np.ndarray, s: np.ndarray,
               d: np.ndarray, points: np.ndarray) -> np.ndarray:
        """``[H, W, 3] uint8`` image from the hit buffer (``s``, ``d``: road coordinates of the
        ground pixels; ``points``: ``[H, W, 3]`` world hit points)."""
        H, W = self.camera.height, self.camera.width
        light = self.lighting
        fx = self.camera.K[0, 0]
        radiance = np.zeros((H, W, 3))
        ray_len = np.linalg.norm(rays_world, axis=-1)
        dist = hits.depth_m * ray_len                                  # along the ray (m)

        if ground.any():
            cos_g = np.abs(rays_world[ground][:, 2]) / ray_len[ground]
            fp = dist[ground] / (fx * ray_len[ground]) * ray_len[ground] / np.maximum(cos_g, 0.08)
            fp = np.minimum(fp, 50.0)
            albedo = shading.ground_albedo(s, d, points[ground][:, :2], fp, self.layout.cross_section,
                                            light)
            normal = np.tile([0.0, 0.0, 1.0], (len(s), 1))
            P = self.layout.parts
            shadow = ground_shadow(self.camera, T_world_cam, hits.depth_m, ground, light.sun_dir_world,
                                   parts.T_world_part, P.shape[part_index], P.half[part_index])[ground]
            radiance[ground] = albedo * shading.irradiance(normal, light, 1.0 - shadow)

        on_part = hits.prim >= 0
        if on_part.any():
            idx = hits.prim[on_part]
            q = part_index[idx]
            P = self.layout.parts
            n_local = hits.part_normal
            R_world_part = np.take(parts.T_world_part[:, :3, :3], idx, axis=0)    # np.take: fast gather
            n_world = np.einsum("nij,nj->ni", R_world_part, n_local)
            view = rays_world[on_part] / ray_len[on_part][:, None]
            cos_v = np.abs(np.einsum("ni,ni->n", n_world, view))
            fp = np.minimum(dist[on_part] / fx / np.maximum(cos_v, 0.15), 50.0)
            material, color, half, seed = (np.take(a, q, axis=0)
                                           for a in (P.material, P.color, P.half, P.seed))
            albedo, emit = shading.object_albedo(material, color, hits.part_local, n_local, half, seed, fp)
            radiance[on_part] = albedo * shading.irradiance(n_world, light) + emit

        # haze over the whole image (cheaper than a masked gather; sky is overwritten next)
        radiance = shading.apply_haze(radiance.reshape(-1, 3), dist.reshape(-1), light).reshape(H, W, 3)
        sky = hits.prim == SKY_PRIM
        if sky.any():
            radiance[sky] = shading.sky_radiance(rays_world[sky], fx, light)
        return shading.to_srgb8(radiance, light.exposure)


def render_sequence(config: SimConfig) -> Iterator[SimFrame]:
    """Build the world for ``config`` and yield its ``config.frames`` frames in order."""
    world = SyntheticWorld(config)
    for index in range(config.frames):
        yield world.render(index)
