"""CityscapesReader on a tiny Cityscapes tree written here in the real layout and file formats."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from unified_perception.contract import CLASS_ID, IGNORE_ID, PANOPTIC_LABEL_DIVISOR
from unified_perception.data import open_dataset
from unified_perception.data.cityscapes import FRAME_RATE_HZ, CityscapesReader
from unified_perception.data.errors import DatasetConfigError, MissingFileError
from unified_perception.data.sample import PANOPTIC_IGNORE

H, W = 64, 128
CITY, SEQ = "aachen", 3
FRAMES = (17, 18, 19, 20)       # snippet frames; 19 is annotated (as in the real data set)
ANNOTATED = 19
FX, FY, U0, V0, BASELINE = 110.0, 112.0, 64.2, 30.9, 0.209313


def stem(frame: int) -> str:
    return f"{CITY}_{SEQ:06d}_{frame:06d}"


def frame_rgb(frame: int) -> np.ndarray:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = 10 * frame
    rgb[..., 1] = np.arange(H, dtype=np.uint8)[:, None]
    rgb[..., 2] = 200
    return rgb


def label_images() -> tuple[np.ndarray, np.ndarray]:
    """labelIds (uint8) and instanceIds (uint16) of the annotated frame."""
    label_ids = np.full((H, W), 7, np.uint8)                 # road
    label_ids[:16] = 23                                      # sky
    label_ids[16:24, :8] = 0                                 # unlabeled -> ignore
    label_ids[30:40, 10:30] = 26                             # car instance 26005
    label_ids[30:40, 40:60] = 26                             # car instance 26000
    label_ids[45:55, 70:80] = 24                             # person instance 24001
    label_ids[45:55, 90:100] = 26                            # crowd of cars (no instance)
    instance_ids = label_ids.astype(np.uint16)
    instance_ids[30:40, 10:30] = 26005
    instance_ids[30:40, 40:60] = 26000
    instance_ids[45:55, 70:80] = 24001
    return label_ids, instance_ids


def disparity_png() -> np.ndarray:
    """uint16: p = 0 invalid, p = disparity * 256 + 1."""
    p = np.zeros((H, W), np.uint16)
    p[20:, :] = 1 + 256 * 8          # 8 px
    p[40:, 64:] = 1 + 2 * 256 + 128  # 2.5 px
    p[60:, :4] = 1                   # disparity 0: no depth
    return p


def write_cityscapes(root: Path, split: str = "train") -> Path:
    images = root / "leftImg8bit_sequence" / split / CITY
    images.mkdir(parents=True)
    for frame in FRAMES:
        cv2.imwrite(str(images / f"{stem(frame)}_leftImg8bit.png"),
                    cv2.cvtColor(frame_rgb(frame), cv2.COLOR_RGB2BGR))
    gt = root / "gtFine" / split / CITY
    gt.mkdir(parents=True)
    label_ids, instance_ids = label_images()
    cv2.imwrite(str(gt / f"{stem(ANNOTATED)}_gtFine_labelIds.png"), label_ids)
    cv2.imwrite(str(gt / f"{stem(ANNOTATED)}_gtFine_instanceIds.png"), instance_ids)
    cv2.imwrite(str(gt / f"{stem(ANNOTATED)}_gtFine_color.png"), np.zeros((H, W, 3), np.uint8))
    (gt / f"{stem(ANNOTATED)}_gtFine_polygons.json").write_text("{}")
    disparity = root / "disparity" / split / CITY
    disparity.mkdir(parents=True)
    cv2.imwrite(str(disparity / f"{stem(ANNOTATED)}_disparity.png"), disparity_png())
    camera = root / "camera" / split / CITY
    camera.mkdir(parents=True)
    (camera / f"{stem(ANNOTATED)}_camera.json").write_text(json.dumps({
        "extrinsic": {"baseline": BASELINE, "pitch": 0.038, "roll": -0.0109, "x": 1.7,
                      "y": 0.0658, "yaw": -0.0195, "z": 1.2},
        "intrinsic": {"fx": FX, "fy": FY, "u0": U0, "v0": V0}}, indent=2))
    return root


@pytest.fixture()
def cityscapes_root(tmp_path: Path) -> Path:
    return write_cityscapes(tmp_path / "cityscapes")


def test_labels_map_to_train_ids_instances_and_panoptic(cityscapes_root: Path) -> None:
    reader = CityscapesReader(cityscapes_root, frames="annotated")
    assert len(reader) == 1
    sample = reader[0]
    car, person = CLASS_ID["car"], CLASS_ID["person"]
    assert car == 13
    sem, inst, pan = sample.semantic, sample.instances, sample.panoptic
    assert sem.dtype == np.uint8 and inst.dtype == np.int32 and pan.dtype == np.int32
    assert sem[35, 15] == car and sem[50, 75] == person
    assert sem[60, 120] == CLASS_ID["road"] and sem[5, 5] == CLASS_ID["sky"]
    assert sem[20, 4] == IGNORE_ID and pan[20, 4] == PANOPTIC_IGNORE
    # label id 26 -> train id 13; 26005 and 26000 are two distinct car instances, 24001 a person
    car_a, car_b, walker = inst[35, 15], inst[35, 50], inst[50, 75]
    assert len({car_a, car_b, walker}) == 3 and 0 not in (car_a, car_b, walker)
    assert np.unique(inst[30:40, 10:30]).tolist() == [car_a]
    assert pan[35, 15] == car * PANOPTIC_LABEL_DIVISOR + car_a
    assert pan[35, 50] == car * PANOPTIC_LABEL_DIVISOR + car_b
    assert pan[50, 75] == person * PANOPTIC_LABEL_DIVISOR + walker
    # a crowd region keeps its class with no instance; stuff has instance 0
    assert inst[50, 95] == 0 and pan[50, 95] == car * PANOPTIC_LABEL_DIVISOR
    assert pan[60, 120] == CLASS_ID["road"] * PANOPTIC_LABEL_DIVISOR
    assert np.count_nonzero(inst) == 200 + 200 + 100


def test_disparity_becomes_metric_depth_with_the_camera_json(cityscapes_root: Path) -> None:
    sample = CityscapesReader(cityscapes_root, frames="annotated")[0]
    depth = sample.depth_m
    assert depth.dtype == np.float32 and depth.shape == (H, W)
    assert depth[30, 10] == pytest.approx(BASELINE * FX / 8.0, rel=1e-6)
    assert depth[50, 100] == pytest.approx(BASELINE * FX / 2.5, rel=1e-6)
    assert depth[10, 10] == 0.0 and depth[62, 2] == 0.0          # p = 0 and p = 1: no value
    np.testing.assert_allclose(sample.K, [[FX, 0, U0], [0, FY, V0], [0, 0, 1]])


def test_sequence_windows_and_unannotated_frames_give_images_and_K_only(cityscapes_root: Path) -> None:
    reader = CityscapesReader(cityscapes_root)                    # frames="all", t-1, t, t+1
    assert len(reader) == 2                                       # centres 18 and 19
    plain, annotated = reader[0], reader[1]
    for k, frame in enumerate((17, 18, 19)):
        np.testing.assert_array_equal(plain.images[k], frame_rgb(frame))
    np.testing.assert_allclose(plain.stamps_s, np.array([17, 18, 19]) / FRAME_RATE_HZ)
    assert plain.available() == () and plain.K[0, 0] == FX      # camera of the snippet
    assert set(annotated.available()) == {"depth_m", "semantic", "instances", "panoptic"}
    summary = reader.describe()
    assert (summary.samples, summary.frames, summary.native_size) == (2, 4, (H, W))
    assert summary.details["annotated_samples"] == 1


def test_top_crop_then_resize_keeps_intrinsics_consistent(cityscapes_root: Path) -> None:
    reader = open_dataset("cityscapes", cityscapes_root, frames="annotated",
                          crop_top_fraction=0.75, size=(24, 64))
    sample = reader[0]
    assert sample.images.shape == (3, 24, 64, 3) and sample.semantic.shape == (24, 64)
    # top 48 of 64 rows kept (origin unchanged), then halved: fx/2, (u0 + 0.5)/2 - 0.5
    np.testing.assert_allclose(sample.K, [[FX / 2, 0, (U0 + 0.5) / 2 - 0.5],
                                          [0, FY / 2, (V0 + 0.5) / 2 - 0.5], [0, 0, 1]])
    assert sample.semantic[23, 5] == CLASS_ID["road"]              # row 47 of the original
    assert set(np.unique(sample.semantic)) <= {0, 10, 11, 13, IGNORE_ID}
    assert reader.describe().size == (24, 64)
    expected_rgb = cv2.resize(frame_rgb(ANNOTATED)[:48], (64, 24), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(sample.image, expected_rgb)


def test_single_images_without_sequences_work_for_offsets_zero(tmp_path: Path) -> None:
    root = tmp_path / "cs"
    write_cityscapes(root)
    (root / "leftImg8bit_sequence").rename(root / "leftImg8bit")
    reader = CityscapesReader(root, offsets=(0,))
    assert len(reader) == 4 and reader[2].images.shape == (1, H, W, 3)
    with pytest.raises(MissingFileError, match="leftImg8bit_sequence"):
        CityscapesReader(root)


def test_missing_files_and_bad_options_give_one_clear_message(cityscapes_root: Path,
                                                              tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="Cityscapes root folder not found"):
        CityscapesReader(tmp_path / "nowhere")
    with pytest.raises(MissingFileError, match="leftImg8bit_sequence/val"):
        CityscapesReader(cityscapes_root, split="val")
    with pytest.raises(DatasetConfigError, match="crop_top_fraction"):
        CityscapesReader(cityscapes_root, crop_top_fraction=1.5)
    with pytest.raises(DatasetConfigError, match="option 'crop' is not known"):
        open_dataset("cityscapes", cityscapes_root, crop=0.75)
    with pytest.raises(DatasetConfigError, match="unknown data set kind 'nuscenes'"):
        open_dataset("nuscenes", cityscapes_root)
    for path in (cityscapes_root / "camera").rglob("*.json"):
        path.unlink()
    with pytest.raises(MissingFileError, match="_camera.json.*camera_trainvaltest.zip"):
        CityscapesReader(cityscapes_root)
