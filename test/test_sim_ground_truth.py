"""The synthetic world's ground truth is exact and self-consistent.

The central check re-creates frame t from frame t-1 using only the ground truth of frame t (depth,
ego pose, camera extrinsic, intrinsics, scene flow): every non-sky pixel of t is back-projected with
its depth, moved back by its scene flow, moved into camera t-1 by the ego motion and projected; the
colour of frame t-1 there (bilinear) must equal the colour of frame t.

A pixel counts as visible in t-1 (not occluded) when it projects inside frame t-1 in front of the
camera and the inverse depth of frame t-1, interpolated bilinearly at that spot, agrees with the
warped point's inverse depth within 2 %. Inverse depth is linear in the image on planes, so this
holds on every surface and fails across depth edges and where something else covers the point.
"""

from __future__ import annotations

import numpy as np
import pytest

from unified_perception.contract import CLASSES, CLASS_ID, PANOPTIC_LABEL_DIVISOR, THING_CLASS_IDS
from unified_perception.sim.config import CameraConfig, SimConfig, SimConfigError
from unified_perception.sim.world import SimFrame, SyntheticWorld, render_sequence

SEEDS = (0, 1, 2)
MEAN_ABS_ERROR_DN = 3.5       # mean |I_t - warp(I_t-1)| over visible pixels, 8-bit units
MIN_VISIBLE_FRACTION = 0.85   # of non-sky pixels
MOVING_MEAN_ABS_ERROR_DN = 7.0
MIN_MOVING_VISIBLE_FRACTION = 0.6


def _bilinear(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    H, W = img.shape[:2]
    u0 = np.clip(np.floor(u).astype(int), 0, W - 2)
    v0 = np.clip(np.floor(v).astype(int), 0, H - 2)
    a, b = (u - u0)[..., None], (v - v0)[..., None]
    im = img.reshape(H, W, -1).astype(np.float64)
    return ((1 - a) * (1 - b) * im[v0, u0] + a * (1 - b) * im[v0, u0 + 1]
            + (1 - a) * b * im[v0 + 1, u0] + a * b * im[v0 + 1, u0 + 1])


def warp_previous(prev: SimFrame, cur: SimFrame, use_flow: bool = True
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Visible mask ``[H, W]`` and per-pixel mean abs colour error ``[H, W]`` (0..255)."""
    H, W = cur.depth_m.shape
    K = cur.K
    uu, vv = np.meshgrid(np.arange(W, dtype=float), np.arange(H, dtype=float))
    rays = np.stack([(uu - K[0, 2]) / K[0, 0], (vv - K[1, 2]) / K[1, 1], np.ones_like(uu)], -1)
    finite = np.isfinite(cur.depth_m)
    points = rays * np.where(finite, cur.depth_m, 1.0)[..., None]
    if use_flow:
        points = points - cur.scene_flow_m
    T_prev_cur = np.linalg.inv(prev.T_odom_base @ prev.T_base_cam) @ (cur.T_odom_base @ cur.T_base_cam)
    q = points @ T_prev_cur[:3, :3].T + T_prev_cur[:3, 3]
    z = q[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * q[..., 0] / z + K[0, 2]
        v = K[1, 1] * q[..., 1] / z + K[1, 2]
    inside = finite & (z > 0.1) & (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1)
    u, v = np.where(inside, u, 0.0), np.where(inside, v, 0.0)
    prev_depth = prev.depth_m.astype(np.float64)
    inv_prev = _bilinear(np.where(np.isfinite(prev_depth), 1.0 / prev_depth, 0.0), u, v)[..., 0]
    visible = inside & (np.abs(inv_prev * z - 1.0) < 0.02)
    error = np.abs(_bilinear(prev.image_rgb, u, v) - cur.image_rgb).mean(axis=-1)
    return visible, error


@pytest.fixture(scope="module")
def frame_pairs() -> list[tuple[SimFrame, SimFrame]]:
    pairs = []
    for seed in SEEDS:
        world = SyntheticWorld(SimConfig(seed=seed, frames=8, camera=CameraConfig(height=96, width=320)))
        pairs.append((world.render(3), world.render(4)))
    return pairs


def test_warping_previous_frame_with_ground_truth_reproduces_current_frame(frame_pairs) -> None:
    for prev, cur in frame_pairs:
        visible, error = warp_previous(prev, cur)
        non_sky = np.isfinite(cur.depth_m)
        assert visible.sum() >= MIN_VISIBLE_FRACTION * non_sky.sum()
        assert error[visible].mean() < MEAN_ABS_ERROR_DN


def test_warping_is_consistent_on_moving_objects_only_with_scene_flow(frame_pairs) -> None:
    moving_total = 0
    for prev, cur in frame_pairs:
        moving = cur.motion_mask
        moving_total += moving.sum()
        if moving.sum() < 50:
            continue
        visible, error = warp_previous(prev, cur)
        assert (visible & moving).sum() >= MIN_MOVING_VISIBLE_FRACTION * moving.sum()
        assert error[visible & moving].mean() < MOVING_MEAN_ABS_ERROR_DN
        # without the scene flow the same pixels no longer line up with frame t-1
        visible_rigid, _ = warp_previous(prev, cur, use_flow=False)
        assert (visible_rigid & moving).sum() < 0.5 * (visible & moving).sum()
    assert moving_total > 500, "the test scenes should contain moving objects"


def test_static_pixels_have_exactly_zero_flow_and_moving_pixels_are_masked(frame_pairs) -> None:
    for _, cur in frame_pairs:
        moves = np.linalg.norm(cur.scene_flow_m, axis=-1) > 0
        assert np.all(cur.scene_flow_m[~cur.motion_mask] == 0.0)
        assert np.array_equal(moves, cur.motion_mask)
        assert np.isin(cur.semantic[cur.motion_mask], THING_CLASS_IDS).all()


def test_panoptic_is_class_times_divisor_plus_instance_everywhere(frame_pairs) -> None:
    thing = np.array([c.is_thing for c in CLASSES])
    for _, cur in frame_pairs:
        assert np.array_equal(cur.panoptic, cur.semantic.astype(np.int32) * PANOPTIC_LABEL_DIVISOR
                              + cur.instances)
        assert cur.semantic.max() < len(CLASSES)
        is_thing = thing[cur.semantic]
        assert np.all(cur.instances[~is_thing] == 0)
        assert np.all(cur.instances[is_thing] > 0)
        assert np.array_equal(cur.semantic == CLASS_ID["sky"], ~np.isfinite(cur.depth_m))


def test_instances_keep_their_id_and_class_across_frames(frame_pairs) -> None:
    for prev, cur in frame_pairs:
        for inst in np.intersect1d(np.unique(prev.instances), np.unique(cur.instances)):
            if inst == 0:
                continue
            assert np.unique(prev.semantic[prev.instances == inst]).tolist() == \
                np.unique(cur.semantic[cur.instances == inst]).tolist()


def test_depth_is_optical_z_of_the_ground_plane_below_the_horizon() -> None:
    cfg = SimConfig(seed=4, frames=1, camera=CameraConfig(height=64, width=128, pitch_rad=0.0),
                    traffic_density=0, parked_density=0, pedestrian_density=0)
    frame = next(render_sequence(cfg))
    K, h = frame.K, cfg.camera.mount_z_m
    # bottom row centre looks at the road right ahead: a flat ground plane h below the camera
    v = cfg.camera.height - 1
    expected = h * K[1, 1] / (v - K[1, 2])
    assert frame.semantic[v, cfg.camera.width // 2] == CLASS_ID["road"]
    assert frame.depth_m[v, cfg.camera.width // 2] == pytest.approx(expected, rel=1e-5)


def test_steering_follows_path_curvature_through_the_bicycle_model() -> None:
    cfg = SimConfig(seed=7, frames=60, camera=CameraConfig(height=16, width=32), wheelbase_m=2.9)
    world = SyntheticWorld(cfg)
    frames = [world.render(k) for k in range(0, 60, 1)]
    yaw = np.unwrap([np.arctan2(f.T_odom_base[1, 0], f.T_odom_base[0, 0]) for f in frames])
    xy = np.array([f.T_odom_base[:2, 3] for f in frames])
    step = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    curvature_from_poses = np.diff(yaw) / step
    steering = np.array([f.steering_rad for f in frames])
    mid_steering = 0.5 * (steering[1:] + steering[:-1])
    assert np.abs(np.arctan(2.9 * curvature_from_poses) - mid_steering).max() < 2e-3
    assert np.ptp(steering) > 0.005, "this seed should have a curve or a lane change"
    assert all(f.T_odom_base[2, 3] == 0 for f in frames)
    np.testing.assert_allclose(frames[0].T_odom_base, np.eye(4), atol=1e-12)


def test_same_seed_renders_identical_frames_and_another_seed_does_not() -> None:
    cfg = SimConfig(seed=11, frames=3, camera=CameraConfig(height=64, width=128))
    a = list(render_sequence(cfg))
    b = list(render_sequence(cfg))
    c = list(render_sequence(SimConfig(seed=12, frames=3, camera=CameraConfig(height=64, width=128))))
    for fa, fb in zip(a, b):
        assert fa.image_rgb.tobytes() == fb.image_rgb.tobytes()
        assert fa.depth_m.tobytes() == fb.depth_m.tobytes()
        assert fa.scene_flow_m.tobytes() == fb.scene_flow_m.tobytes()
    assert a[-1].image_rgb.tobytes() != c[-1].image_rgb.tobytes()


def test_frames_have_the_documented_types_and_shapes() -> None:
    cfg = SimConfig(seed=0, frames=2, fps=20.0, time_offset_s=5.0,
                    camera=CameraConfig(height=64, width=128))
    frames = list(render_sequence(cfg))
    f = frames[1]
    assert f.image_rgb.shape == (64, 128, 3) and f.image_rgb.dtype == np.uint8
    assert f.depth_m.dtype == np.float32 and f.scene_flow_m.shape == (64, 128, 3)
    assert f.semantic.dtype == np.uint8 and f.instances.dtype == np.int32
    assert f.panoptic.dtype == np.int32 and f.motion_mask.dtype == bool
    assert f.stamp_s == pytest.approx(5.05)
    assert f.K[0, 0] == pytest.approx(0.58 * 128)
    # the optical axis looks forward along base_link x, slightly down
    assert f.T_base_cam[:3, 2] @ np.array([1.0, 0.0, 0.0]) > 0.99
    assert f.T_base_cam[2, 2] < 0


def test_bad_parameters_raise_one_clear_message() -> None:
    with pytest.raises(SimConfigError, match="wheelbase_m"):
        SimConfig(wheelbase_m=-1.0).validate()


def test_a_sequence_with_more_objects_than_panoptic_instance_ids_is_refused_clearly() -> None:
    # panoptic = class * 1000 + instance: instance 1000 of a car would read as a truck
    crowded = SimConfig(frames=200, traffic_density=10.0, parked_density=10.0,
                        pedestrian_density=30.0)
    with pytest.raises(SimConfigError, match=f"{PANOPTIC_LABEL_DIVISOR - 1}.*frames"):
        SyntheticWorld(crowded)
