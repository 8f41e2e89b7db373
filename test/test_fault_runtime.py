"""Faults whose handling lives in runtime/: NaN / Inf model outputs, time jumps in the vehicle state,
stale steering, bad intrinsics, oversized compressed images. Real ONNX Runtime sessions, no ROS."""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from fault_helpers import INF_CORNER, NAN_CORNER, frame_with_corner, poisoned_model
from unified_perception.runtime.engine import CameraFrame, EngineConfig, FrameResult, InferenceEngine
from unified_perception.runtime.image_codec import (
    MAX_COMPRESSED_PIXELS, ImageDecodeError, decode_compressed_rgb)
from unified_perception.runtime.preprocess import intrinsics_problem
from unified_perception.runtime.stats import RunStats
from unified_perception.runtime.steering import SteeringLimits
from unified_perception.runtime.vehicle_state import VehicleState

LIMITS = SteeringLimits(max_angle_rad=0.5, max_rate_rad_s=1.0, smoothing_time_constant_s=0.0,
                        stale_timeout_s=0.3)


@pytest.fixture(scope="module")
def poisoned(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return poisoned_model(tiny_model_path, tmp_path_factory.mktemp("poisoned") / "poisoned.onnx")


@pytest.mark.parametrize("state_on_device", [False, True])
def test_non_finite_outputs_are_named_and_the_camera_state_restarts(
        poisoned: Path, state_on_device: bool) -> None:
    engine = InferenceEngine(EngineConfig(str(poisoned), providers=("cpu",), warmup_runs=0,
                                          state_on_device=state_on_device))
    rgb = np.random.default_rng(0).integers(0, 250, (64, 128, 3), dtype=np.uint8)
    corners = [0, 0, NAN_CORNER, 0, 0, INF_CORNER, 0, 0]
    results = [engine.infer([CameraFrame("front", frame_with_corner(rgb, c), 0.1 * i)])[0]
               for i, c in enumerate(corners)]
    for i, (corner, result) in enumerate(zip(corners, results)):
        if corner in (NAN_CORNER, INF_CORNER):
            assert not result.finite and {"depth", "steering", "ego_motion"} <= set(result.non_finite)
            follow = results[i + 1]     # poisoned state is not fed on: a fresh, finite frame
            assert follow.finite and not follow.pair_valid and "not finite" in follow.reset_reason
            assert results[i + 2].finite and results[i + 2].pair_valid
        else:
            assert result.finite and np.isfinite(result.depth_m).all()
    assert results[1].pair_valid and math.isfinite(results[1].steering_rad)


def test_non_finite_outputs_of_one_camera_leave_the_other_camera_alone(poisoned: Path) -> None:
    engine = InferenceEngine(EngineConfig(str(poisoned), providers=("cpu",), warmup_runs=0))
    rgb = np.random.default_rng(1).integers(0, 250, (64, 128, 3), dtype=np.uint8)
    for i, corner in enumerate([0, NAN_CORNER, 0]):
        front, rear = engine.infer([CameraFrame("front", frame_with_corner(rgb, corner), 0.1 * i),
                                    CameraFrame("rear", rgb, 0.1 * i)])
        assert front.finite == (corner != NAN_CORNER) and rear.finite
        assert rear.pair_valid == (i > 0)
    assert not front.pair_valid


def _result(stamp_s: float, pair_valid: bool = True, steering: float | None = 0.2) -> FrameResult:
    step = np.eye(4)
    step[2, 3] = 1.0
    return FrameResult(camera="front", stamp_s=stamp_s, depth_m=None, semantic=None, instances=None,
                       panoptic=None, motion_prob=None, scene_flow_m=None,
                       T_cam_prev_cam_cur=step if pair_valid else None, steering_rad=steering,
                       latent=np.zeros(4, np.float32), pair_valid=pair_valid,
                       dt_s=0.1 if pair_valid else None)


def _vehicle() -> VehicleState:
    return VehicleState(np.eye(4), LIMITS)


def test_time_going_back_restarts_odometry_and_a_forward_gap_does_not() -> None:
    state = _vehicle()
    for k in range(1, 4):
        step = state.odometry(_result(10.0 + 0.1 * k))
    assert step.T_odom_base[2, 3] == pytest.approx(3.0) and not step.restarted
    assert state.odometry(_result(30.0, pair_valid=False)) is None          # gap: step skipped
    assert state.odometry(_result(30.1)).T_odom_base[2, 3] == pytest.approx(4.0)
    assert state.odometry(_result(5.0, pair_valid=False)) is None           # bag loop
    after = state.odometry(_result(5.1))
    assert after.restarted and after.T_odom_base[2, 3] == pytest.approx(1.0)
    assert not state.odometry(_result(5.2)).restarted


def test_an_older_frame_holds_steering_then_the_new_time_base_is_used() -> None:
    state = _vehicle()
    first = state.steering(_result(10.0, steering=0.3), 10.0, 10.0)
    assert not first.held
    jumped = state.steering(_result(2.0, steering=-0.4), 2.0, 2.0)
    assert jumped.held and jumped.angle_rad == first.angle_rad
    assert not state.steering(_result(2.1, steering=-0.4), 2.1, 2.1).held


def test_the_watchdog_holds_then_returns_steering_to_straight_at_the_rate_limit() -> None:
    state = _vehicle()
    state.steering(_result(0.0, steering=0.4), 0.0, 0.0)
    angle = state.steering(_result(0.5, steering=0.4), 0.5, 0.5).angle_rad
    assert angle == pytest.approx(0.4)
    assert state.watchdog(0.7) is None                          # within stale_timeout_s
    held = state.watchdog(0.9)
    assert held.held and held.angle_rad == pytest.approx(0.4)   # held until 2 x timeout
    previous, now = 0.4, 1.1
    while now < 2.0:
        out = state.watchdog(now)
        assert out.held and 0.0 <= out.angle_rad <= previous
        assert previous - out.angle_rad <= LIMITS.max_rate_rad_s * 0.2 + 1e-9
        previous, now = out.angle_rad, now + 0.2
    assert previous == 0.0
    fresh = state.steering(_result(2.1, steering=0.1), 2.1, 2.1)
    assert not fresh.held and fresh.angle_rad == pytest.approx(0.1)


def test_a_clock_jumping_back_restarts_the_watchdog_timeout() -> None:
    state = _vehicle()
    state.steering(_result(100.0, steering=0.2), 100.0, 100.0)
    assert state.watchdog(10.0) is None                 # clock went back by 90 s
    assert state.watchdog(10.2) is None
    assert state.watchdog(10.4).held                    # stale 0.4 s after the jump


@pytest.mark.parametrize("K,calib,image,why", [
    ([[np.nan, 0, 64], [0, 100, 48], [0, 0, 1]], (96, 128), (96, 128), "finite"),
    ([[np.inf, 0, 64], [0, 100, 48], [0, 0, 1]], (96, 128), (96, 128), "finite"),
    ([[0, 0, 64], [0, 100, 48], [0, 0, 1]], (96, 128), (96, 128), "fx, fy > 0"),
    ([[-100, 0, 64], [0, 100, 48], [0, 0, 1]], (96, 128), (96, 128), "fx, fy > 0"),
    ([[100, 0, 64], [0, 100, 48], [0, 0, 0]], (96, 128), (96, 128), "last row"),
    ([[100, 0, 64], [0, 100, 48], [0, 0, 1]], (480, 640), (96, 160), "aspect"),
])
def test_unusable_intrinsics_are_named(K, calib, image, why: str) -> None:
    assert why in intrinsics_problem(np.array(K, float), calib, image)


def test_intrinsics_at_another_resolution_with_the_same_aspect_are_usable() -> None:
    K = np.array([[100.0, 0, 64], [0, 100, 48], [0, 0, 1]])
    assert intrinsics_problem(K, (960, 1280), (96, 128)) == ""


def test_stats_fail_from_a_non_finite_frame_until_the_next_good_one() -> None:
    stats = RunStats()
    stats.record_frame(1.0, 0.01)
    assert not stats.snapshot(1.5).failing
    stats.count_non_finite(2.0)
    snap = stats.snapshot(2.5)
    assert snap.failing and snap.non_finite == 1 and snap.since_non_finite_s == pytest.approx(0.5)
    assert snap.since_frame_s == pytest.approx(1.5)
    stats.record_frame(3.0, 0.01)
    assert not stats.snapshot(3.1).failing


def _png_header(width: int, height: int, idat: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_a_small_png_declaring_a_huge_image_is_refused_before_decoding() -> None:
    side = int(math.isqrt(MAX_COMPRESSED_PIXELS)) + 1
    bomb = zlib.compressobj(9)
    idat = bomb.compress(b"\0" * (1 + 3 * side) * 64) + bomb.flush()   # valid first rows
    with pytest.raises(ImageDecodeError, match="declares"):
        decode_compressed_rgb(SimpleNamespace(format="png", data=_png_header(side, side, idat)))


def test_a_jpeg_header_declaring_a_huge_image_is_an_invalid_frame_not_an_opencv_error() -> None:
    ok, jpeg = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    data = bytearray(jpeg.tobytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 65000, 65000)
    with pytest.raises(ImageDecodeError):
        decode_compressed_rgb(SimpleNamespace(format="jpeg", data=bytes(data)))
    data[sof + 5:sof + 9] = struct.pack(">HH", 0, 16)             # zero height: OpenCV refuses
    with pytest.raises(ImageDecodeError):
        decode_compressed_rgb(SimpleNamespace(format="jpeg", data=bytes(data)))
