"""The ray caster's culling loses nothing: screen rectangles, depth-order skipping and the sun-footprint
rectangles of the shadow pass give exactly what testing every primitive against every pixel gives."""

from __future__ import annotations

import numpy as np
import pytest

from unified_perception.sim.config import CameraConfig, SimConfig
from unified_perception.sim.materials import GROUND_PRIM, SKY_PRIM
from unified_perception.sim.primitives import INTERSECTORS, Shape
from unified_perception.sim.raycast import cast_rays
from unified_perception.sim.shadows import ground_shadow
from unified_perception.sim.world import SyntheticWorld


def _scene(seed: int, index: int):
    world = SyntheticWorld(SimConfig(seed=seed, frames=10, camera=CameraConfig(height=64, width=128)))
    T_world_base, _, _, _ = world.ego.state_at(world.frame_time(index))
    T_world_cam = T_world_base @ world.T_base_cam
    part_index, parts = world._visible_parts(world.frame_time(index), T_world_cam)
    P = world.layout.parts
    return world, T_world_cam, parts.T_world_part, P.shape[part_index], P.half[part_index]


def _local_rays(world, T_world_cam, T_world_part, i):
    """Camera centre ``[3]`` and pixel rays ``[H*W, 3]`` in primitive ``i``'s frame."""
    R, c = T_world_part[i, :3, :3], T_world_part[i, :3, 3]
    rays_world = world.camera.pixel_rays().reshape(-1, 3) @ T_world_cam[:3, :3].T
    return R.T @ (T_world_cam[:3, 3] - c), rays_world @ R


@pytest.mark.parametrize("seed,index", [(0, 0), (1, 5), (2, 9)])
def test_culled_depth_pass_equals_every_primitive_against_every_pixel(seed: int, index: int) -> None:
    world, T_world_cam, T_world_part, shape, half = _scene(seed, index)
    hits = cast_rays(world.camera, T_world_cam, T_world_part, shape, half)
    H, W = hits.depth_m.shape
    rays_world = world.camera.pixel_rays().reshape(-1, 3) @ T_world_cam[:3, :3].T
    with np.errstate(divide="ignore"):
        t_ground = np.where(rays_world[:, 2] < 0, -T_world_cam[2, 3] / rays_world[:, 2], np.inf)
    best = np.where(t_ground < 3000.0, t_ground, np.inf)
    for i in range(len(shape)):
        o, d = _local_rays(world, T_world_cam, T_world_part, i)
        t, _ = INTERSECTORS[Shape(int(shape[i]))](o, d.T, half[i])
        best = np.minimum(best, t)
    best = best.reshape(H, W)
    assert (hits.prim >= 0).sum() > 0.05 * H * W, "the scene should show some objects"
    np.testing.assert_array_equal(np.isfinite(best), hits.prim != SKY_PRIM)
    finite = np.isfinite(best)
    np.testing.assert_allclose(hits.depth_m[finite], best[finite], rtol=1e-9)


@pytest.mark.parametrize("seed,index", [(0, 0), (1, 5), (2, 9), (3, 3)])
def test_footprint_culled_shadows_equal_every_primitive_against_every_ground_pixel(
        seed: int, index: int) -> None:
    world, T_world_cam, T_world_part, shape, half = _scene(seed, index)
    hits = cast_rays(world.camera, T_world_cam, T_world_part, shape, half)
    ground = hits.prim == GROUND_PRIM
    sun = world.lighting.sun_dir_world
    shadow = ground_shadow(world.camera, T_world_cam, hits.depth_m, ground, sun, T_world_part, shape, half)

    rays_world = world.camera.pixel_rays()[ground] @ T_world_cam[:3, :3].T
    points = T_world_cam[:3, 3] + hits.depth_m[ground][:, None] * rays_world
    L = sun / np.linalg.norm(sun)
    expected = np.zeros(len(points), dtype=bool)
    for i in range(len(shape)):
        R, c = T_world_part[i, :3, :3], T_world_part[i, :3, 3]
        t, _ = INTERSECTORS[Shape(int(shape[i]))](((points - c) @ R).T, L @ R, half[i])
        expected |= np.isfinite(t)
    assert expected.any(), "the scene should have cast shadows on the ground"
    assert not shadow[~ground].any()
    np.testing.assert_array_equal(shadow[ground], expected)


@pytest.mark.parametrize("shape", list(Shape))
def test_normals_are_unit_and_face_the_incoming_ray(shape: Shape) -> None:
    rng = np.random.default_rng(int(shape))
    half = np.array([0.8, 0.5, 1.2])
    o = np.array([3.0, -2.0, 1.5])
    d = (rng.uniform(-1.0, 1.0, (2000, 3)) * half * 0.9 - o).T          # towards the inside
    t, n = INTERSECTORS[shape](o, d, half, want_normal=True)
    t_only, none = INTERSECTORS[shape](o, d, half)
    assert none is None
    np.testing.assert_array_equal(t, t_only)
    hit = np.isfinite(t)
    assert hit.mean() > 0.5
    np.testing.assert_allclose(np.linalg.norm(n[hit], axis=1), 1.0, atol=1e-9)
    assert (np.einsum("ni,in->n", n[hit], d[:, hit]) < 0).all()
