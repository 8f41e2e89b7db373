"""Pre/post-processing around the model: resizing and intrinsics, scene-flow points, colouring, run
statistics, and the choice of execution provider."""

from __future__ import annotations

import numpy as np
import pytest

from unified_perception import contract
from unified_perception.runtime.colorize import (
    colorize_depth, colorize_instances, colorize_semantic, overlay_motion, semantic_palette)
from unified_perception.runtime.postprocess import instances_u16, motion_mask
from unified_perception.runtime.preprocess import (
    batch_images, intrinsics_from_normalized, normalized_intrinsics, resize_to_model,
    scale_intrinsics)
from unified_perception.runtime.providers import explain_fallback, select_providers
from unified_perception.runtime.scene_flow import backproject, scene_flow_points
from unified_perception.runtime.stats import BatchSnapshot, BatchStats, RunStats

K_FULL = np.array([[700.0, 0.0, 639.5], [0.0, 700.0, 359.5], [0.0, 0.0, 1.0]])


def _project(K: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    uvw = xyz @ K.T
    return uvw[:, :2] / uvw[:, 2:]


def test_images_are_resized_to_the_model_size_and_stacked() -> None:
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    small = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)
    batch = batch_images([big, small], (64, 128))
    assert batch.shape == (2, 64, 128, 3) and batch.dtype == np.uint8 and batch.flags.c_contiguous
    same = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
    assert resize_to_model(same, (64, 128)) is same
    flat = np.full((720, 1280, 3), 77, np.uint8)
    assert np.all(resize_to_model(flat, (64, 128)) == 77)


@pytest.mark.parametrize("image, message", [
    (np.zeros((64, 128), np.uint8), r"\[H, W, 3\]"),
    (np.zeros((64, 128, 4), np.uint8), r"\[H, W, 3\]"),
    (np.zeros((64, 128, 3), np.float32), "uint8"),
])
def test_a_malformed_image_is_rejected_saying_what_is_expected(image: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resize_to_model(image, (64, 128))


def test_scaled_intrinsics_project_points_onto_the_resized_pixels() -> None:
    rng = np.random.default_rng(1)
    xyz = np.column_stack([rng.uniform(-5, 5, 100), rng.uniform(-2, 2, 100), rng.uniform(3, 50, 100)])
    full, small = (720, 1280), (192, 640)
    K_small = scale_intrinsics(K_FULL, full, small)
    uv_full, uv_small = _project(K_FULL, xyz), _project(K_small, xyz)
    sy, sx = small[0] / full[0], small[1] / full[1]
    np.testing.assert_allclose(uv_small[:, 0], (uv_full[:, 0] + 0.5) * sx - 0.5, atol=1e-9)
    np.testing.assert_allclose(uv_small[:, 1], (uv_full[:, 1] + 0.5) * sy - 0.5, atol=1e-9)
    np.testing.assert_allclose(scale_intrinsics(K_small, small, full), K_FULL, atol=1e-9)
    K_meta = intrinsics_from_normalized((0.5, 1.0, 0.5, 0.5), (64, 128))
    np.testing.assert_allclose(K_meta, [[64, 0, 63.5], [0, 64, 31.5], [0, 0, 1]])
    np.testing.assert_allclose(normalized_intrinsics(K_meta, (64, 128)), (0.5, 1.0, 0.5, 0.5))
    # One normalised K serves every size: at another size it equals the scaled pixel K.
    np.testing.assert_allclose(intrinsics_from_normalized((0.5, 1.0, 0.5, 0.5), (192, 640)),
                               scale_intrinsics(K_meta, (64, 128), (192, 640)), atol=1e-9)


def test_scene_flow_points_back_project_depth_and_divide_flow_by_time() -> None:
    h, w = 48, 96
    K = scale_intrinsics(K_FULL, (720, 1280), (h, w))
    rng = np.random.default_rng(2)
    depth = rng.uniform(2.0, 40.0, (h, w)).astype(np.float32)
    depth[0, 0], depth[4, 8] = np.nan, 0.0                       # left out
    flow = rng.normal(0.0, 0.3, (h, w, 3)).astype(np.float32)
    flow[8, 4] = np.inf                                           # left out
    xyz, velocity = scene_flow_points(depth, flow, K, dt_s=0.1, stride=4)
    assert xyz.dtype == velocity.dtype == np.float32
    assert xyz.shape == velocity.shape == ((h // 4) * (w // 4) - 3, 3)
    grid = np.stack(np.meshgrid(np.arange(0, w, 4), np.arange(0, h, 4)), axis=-1).reshape(-1, 2)
    keep = np.isfinite(depth[::4, ::4]).ravel() & (depth[::4, ::4] > 0).ravel() & \
        np.isfinite(flow[::4, ::4]).all(-1).ravel()
    np.testing.assert_allclose(_project(K, xyz.astype(np.float64)), grid[keep], atol=1e-3)
    np.testing.assert_allclose(xyz[:, 2], depth[::4, ::4].ravel()[keep], rtol=1e-6)
    np.testing.assert_allclose(velocity, flow[::4, ::4].reshape(-1, 3)[keep] / 0.1, rtol=1e-5)
    full, _ = backproject(depth, K, stride=1)
    assert full.shape == (h, w, 3)
    with pytest.raises(ValueError, match="dt_s"):
        scene_flow_points(depth, flow, K, dt_s=0.0)


def test_semantic_colours_come_from_the_metadata_table() -> None:
    semantic = np.array([[0, 13], [10, 254]], np.uint8)
    colors = [c.color_rgb for c in contract.CLASSES]
    rgb = colorize_semantic(semantic, colors)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == contract.CLASSES[0].color_rgb
    assert tuple(rgb[0, 1]) == contract.CLASSES[13].color_rgb
    assert tuple(rgb[1, 1]) == (0, 0, 0)
    np.testing.assert_array_equal(colorize_semantic(semantic, semantic_palette(colors)), rgb)


def test_depth_colours_separate_near_from_far_and_blank_invalid_pixels() -> None:
    depth = np.array([[0.5, 80.0], [np.nan, -1.0]], np.float32)
    rgb = colorize_depth(depth, 0.1, 100.0)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb[0, 0].astype(int) - rgb[0, 1].astype(int)).sum() > 100
    assert not rgb[1].any()


def test_motion_overlay_tints_only_moving_pixels_and_mask_is_255() -> None:
    image = np.full((4, 4, 3), 100, np.uint8)
    prob = np.zeros((4, 4), np.float32)
    prob[1, 2] = 0.9
    out = overlay_motion(image, prob, threshold=0.5, color_rgb=(255, 0, 0), alpha=0.5)
    assert tuple(out[1, 2]) == (177, 50, 50)
    assert (out[prob <= 0.5] == 100).all()
    mask = motion_mask(prob, 0.5)
    assert mask.dtype == np.uint8 and mask[1, 2] == 255 and mask.sum() == 255
    instances = np.array([[0, 3], [70000, 3]], np.int32)
    assert instances_u16(instances).tolist() == [[0, 3], [65535, 3]]
    colored = colorize_instances(instances)
    assert not colored[0, 0].any() and (colored[0, 1] == colored[1, 1]).all() and colored[0, 1].any()


def test_run_stats_report_rate_percentiles_and_counters() -> None:
    stats = RunStats(window=50)
    for k in range(200):
        stats.record_frame(done_s=k * 0.05, latency_s=0.010 + 0.001 * (k % 10))
    stats.count_dropped(3)
    assert stats.snapshot().since_invalid_s is None
    stats.count_invalid(now_s=100.0)
    assert stats.snapshot(now_s=104.5).since_invalid_s == pytest.approx(4.5)
    snap = stats.snapshot()
    assert snap.rate_hz == pytest.approx(20.0)
    assert snap.latency_p50_ms == pytest.approx(14.5)
    assert snap.latency_p95_ms == pytest.approx(np.percentile(
        [10.0 + (k % 10) for k in range(150, 200)], 95))
    assert (snap.frames, snap.dropped, snap.invalid, snap.window) == (200, 3, 1, 50)
    stats.reset()
    assert stats.snapshot().frames == 0 and stats.snapshot().rate_hz == 0.0
    assert stats.snapshot().since_invalid_s is None


def test_run_stats_report_the_median_of_each_stage_of_the_latency() -> None:
    stats = RunStats(window=10)
    stats.record_frame(0.0, 0.05)                       # a frame without stages counts all the same
    assert stats.snapshot().stages_p50_ms == ()
    for k in range(20):
        stats.record_frame(0.05 * (k + 1), 0.050, {"queue": 0.001 * k, "inference": 0.040,
                                                   "publish": 0.002})
    stages = dict(stats.snapshot().stages_p50_ms)
    assert list(stages) == ["queue", "inference", "publish"]          # in FRAME_STAGES order
    assert stages["queue"] == pytest.approx(14.5) and stages["inference"] == pytest.approx(40.0)
    with pytest.raises(ValueError, match="resize"):
        stats.record_frame(2.0, 0.05, {"resize": 0.004})
    stats.reset()
    assert stats.snapshot().stages_p50_ms == ()


def test_batch_stats_give_the_mean_over_the_window_and_the_largest_batch_since_start() -> None:
    batches = BatchStats(window=3)
    assert batches.snapshot() == BatchSnapshot(0, 0.0, 0, 0)
    for frames in (1, 3, 1, 2, 2):
        batches.record(frames)
    assert batches.snapshot() == BatchSnapshot(calls=5, frames_per_call=pytest.approx(5 / 3),
                                               max_frames_per_call=3, window=3)


def test_providers_follow_the_preference_and_say_why() -> None:
    gpu_build = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    choice = select_providers(("tensorrt", "cuda", "cpu"), gpu_build, trt_fp16=True,
                              trt_cache_dir="/tmp/up_trt")
    assert choice.active == "tensorrt" and choice.ort_names == gpu_build
    trt = choice.ort_options[0]
    assert trt["trt_fp16_enable"] and trt["trt_engine_cache_enable"] and trt["trt_timing_cache_enable"]
    assert trt["trt_engine_cache_path"] == "/tmp/up_trt"
    cuda_build = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    choice = select_providers(("tensorrt", "cuda", "cpu"), cuda_build)
    assert choice.active == "cuda" and "TensorRT not available" in choice.reason
    # cuDNN's heuristics pick the convolution algorithms: a start in a fraction of the time
    assert choice.ort_options[0] == {"device_id": 0, "cudnn_conv_algo_search": "HEURISTIC"}
    choice = select_providers(("cuda", "cpu"), ["CPUExecutionProvider"])
    assert choice.active == "cpu" and choice.reason == "CUDA not available in this onnxruntime build; using CPU"
    with pytest.raises(ValueError, match=r"\['tensorrt', 'openvino'\] names unknown execution "
                                         r"provider\(s\) \['openvino'\]: use an ordered list of "
                                         r"tensorrt, cuda, cpu"):
        select_providers(("tensorrt", "openvino"), gpu_build)
    assert select_providers((" CPU ",), gpu_build).active == "cpu"
    with pytest.raises(ValueError, match=r"\(empty list\)"):
        select_providers((), gpu_build)
    with pytest.raises(ValueError, match="add 'cpu'"):
        select_providers(("tensorrt",), ["CPUExecutionProvider"])


def test_a_provider_that_fails_to_start_is_named_with_its_error() -> None:
    choice = select_providers(("tensorrt", "cuda", "cpu"),
                              ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    active, reason = explain_fallback(choice, ["CPUExecutionProvider"],
                                      [("tensorrt", "Fail: libnvinfer.so.10: cannot open"),
                                       ("cuda", "Fail: libcudnn.so.9: cannot open")])
    assert active == "cpu"
    assert reason.startswith("TensorRT, CUDA failed to initialise (TensorRT: Fail: libnvinfer.so.10")
    assert reason.endswith("; using CPU")
    active, reason = explain_fallback(choice, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert active == "cuda" and reason.startswith("TensorRT failed to initialise")
