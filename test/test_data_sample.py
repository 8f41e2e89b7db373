"""The shared sample type: window checks, resizing conventions, data summaries, no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from unified_perception.data import DatasetConfigError, data_summary, open_dataset
from unified_perception.data.resize import resize_nearest, scale_intrinsics
from unified_perception.data.sample import check_offsets, check_size


def _blob_centre(image: np.ndarray) -> tuple[float, float]:
    weights = image.astype(np.float64)
    rows, cols = np.indices(image.shape)
    return float((cols * weights).sum() / weights.sum()), float((rows * weights).sum() / weights.sum())


@pytest.mark.parametrize("size", [(32, 64), (48, 40)])
def test_scaled_intrinsics_follow_where_cv2_resize_moves_a_point(size: tuple[int, int]) -> None:
    height, width = 64, 128
    u0, v0 = 70.3, 21.6
    rows, cols = np.indices((height, width))
    blob = np.exp(-((cols - u0) ** 2 + (rows - v0) ** 2) / (2 * 4.0 ** 2))
    resized = cv2.resize(blob, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    K = np.array([[100.0, 0, u0], [0, 100.0, v0], [0, 0, 1]])   # principal point on the blob
    K_new = scale_intrinsics(K, (height, width), size)
    u1, v1 = _blob_centre(resized)
    assert u1 == pytest.approx(K_new[0, 2], abs=0.05) and v1 == pytest.approx(K_new[1, 2], abs=0.05)
    assert K_new[0, 0] == pytest.approx(100.0 * size[1] / width)


def test_nearest_resize_never_mixes_label_values() -> None:
    labels = np.random.default_rng(0).integers(0, 19, (64, 128)).astype(np.uint8)
    small = resize_nearest(labels, (21, 50))
    big = resize_nearest(labels, (100, 300))
    assert small.dtype == np.uint8 and small.shape == (21, 50) and big.shape == (100, 300)
    assert set(np.unique(small)) <= set(np.unique(labels))
    np.testing.assert_array_equal(resize_nearest(labels, (128, 256))[::2, ::2], labels)


def test_window_and_size_options_are_validated() -> None:
    assert check_offsets([-2, 0, 1]) == (-2, 0, 1)
    for bad in ([-1, 1], [1, 0], [0, 0], "ab"):
        with pytest.raises(DatasetConfigError, match="offsets"):
            check_offsets(bad)
    assert check_size(None) is None and check_size([64, 128]) == (64, 128)
    with pytest.raises(DatasetConfigError, match="size"):
        check_size((0, 128))


def test_data_summary_is_json_for_the_model_metadata(tmp_path: Path) -> None:
    from test_data_cityscapes import write_cityscapes
    from test_data_kitti import DRIVE, write_kitti

    readers = [open_dataset("cityscapes", write_cityscapes(tmp_path / "cs"), size=(32, 64)),
               open_dataset("kitti_raw", write_kitti(tmp_path / "kitti"), drives=[DRIVE])]
    summary = json.loads(json.dumps(data_summary(readers)))
    assert summary["samples"] == 2 + 2
    assert [d["kind"] for d in summary["datasets"]] == ["cityscapes", "kitti_raw"]
    assert summary["datasets"][0]["size"] == [32, 64]


def test_data_readers_do_not_import_torch() -> None:
    code = ("import sys; import unified_perception.data.rosbag, unified_perception.data.kitti, "
            "unified_perception.data.cityscapes; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
