"""Frame windows from Cityscapes: sequence images, gtFine labels, disparity -> metric depth.

Layout (as unpacked from the Cityscapes downloads)::

    <root>/leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png  (30-frame snippets)
    <root>/leftImg8bit/<split>/<city>/...                       (annotated frames only; offsets (0,))
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png, _gtFine_instanceIds.png
    <root>/disparity/<split>/<city>/<city>_<seq>_<frame>_disparity.png  (or disparity_sequence/)
    <root>/camera/<split>/<city>/<city>_<seq>_<frame>_camera.json       (or camera_sequence/)

Frames of a snippet are consecutive frame numbers; a window uses frame numbers ``centre + offset``.
Sequence frames without annotation give images and K only. Stamps are nominal: frame number / 17 Hz.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from unified_perception.data.base import DatasetSummary, SequenceDataset
from unified_perception.data.cityscapes_labels import depth_from_disparity, labels_from_ids
from unified_perception.data.errors import DatasetConfigError, DatasetError, MissingFileError
from unified_perception.data.resize import crop_sample
from unified_perception.data.sample import DEFAULT_OFFSETS, Sample

FRAME_RATE_HZ = 17.0
"""Cityscapes sequences are recorded at 17 Hz; stamps are ``frame / FRAME_RATE_HZ``."""

PAPER_CROP_TOP_FRACTION = 0.75
"""The paper keeps the top 768 of 1024 rows (drops the ego vehicle's bonnet) before resizing."""

_NAME = re.compile(r"^(?P<city>.+)_(?P<seq>\d{6})_(?P<frame>\d{6})_leftImg8bit\.png$")


@dataclass(frozen=True)
class CityscapesFrame:
    """One frame: split, city, snippet number and frame number (``<city>_<seq:06d>_<frame:06d>``)."""

    split: str
    city: str
    seq: int
    frame: int

    @property
    def stem(self) -> str:
        return f"{self.city}_{self.seq:06d}_{self.frame:06d}"

    def moved(self, offset: int) -> "CityscapesFrame":
        return CityscapesFrame(self.split, self.city, self.seq, self.frame + offset)


@dataclass(frozen=True)
class CityscapesCamera:
    """Intrinsics ``K [3, 3]`` (pixels of the full 2048 x 1024 image) and stereo baseline (m)."""

    K: np.ndarray
    baseline_m: float


def read_camera_json(path: Path) -> CityscapesCamera:
    """Parse ``*_camera.json`` (``intrinsic.fx, fy, u0, v0`` and ``extrinsic.baseline``)."""
    try:
        data = json.loads(path.read_text())
        intrinsic, extrinsic = data["intrinsic"], data["extrinsic"]
        K = np.array([[intrinsic["fx"], 0.0, intrinsic["u0"]],
                      [0.0, intrinsic["fy"], intrinsic["v0"]], [0.0, 0.0, 1.0]], dtype=np.float64)
        return CityscapesCamera(K, float(extrinsic["baseline"]))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"Cityscapes camera file {path} is not readable ({type(err).__name__}: "
                           f"{err}); it needs intrinsic.fx/fy/u0/v0 and extrinsic.baseline") from None


def _files(folder: Path, suffix: str) -> dict[str, Path]:
    """``{stem: path}`` of the files named ``<stem><suffix>`` in ``folder`` (empty if absent)."""
    if not folder.is_dir():
        return {}
    return {p.name[: -len(suffix)]: p for p in folder.iterdir() if p.name.endswith(suffix)}


class CityscapesReader(SequenceDataset):
    """Windows of Cityscapes frames with train-id labels, instances, panoptic ids and depth.

    Args:
        path: Cityscapes root (holds leftImg8bit_sequence/, gtFine/, disparity/, camera/).
        split: ``train``, ``val`` or ``test`` (any folder name under the image folder).
        offsets: window relative to the centre frame (default t-1, t, t+1). ``(0,)`` also works
            with only ``leftImg8bit/`` (no sequences).
        size: ``(H, W)`` to resize samples to after cropping (None = native size).
        frames: ``"all"`` (every frame whose window exists) or ``"annotated"`` (centre frames with
            gtFine labels only).
        crop_top_fraction: keep this top fraction of rows before resizing (the paper:
            :data:`PAPER_CROP_TOP_FRACTION` = 768 / 1024); None keeps the whole image.
        depth: read disparity into ``depth_m`` where it exists.
    """

    kind = "cityscapes"

    def __init__(self, path: str | Path, split: str = "train",
                 offsets: Sequence[int] = DEFAULT_OFFSETS, size: Sequence[int] | None = None,
                 frames: str = "all", crop_top_fraction: float | None = None,
                 depth: bool = True) -> None:
        super().__init__(offsets, size)
        self.root = Path(path)
        self.split = split
        if frames not in ("all", "annotated"):
            raise DatasetConfigError(f"frames must be 'all' or 'annotated', got {frames!r}")
        if crop_top_fraction is not None and not 0.0 < crop_top_fraction <= 1.0:
            raise DatasetConfigError(
                f"crop_top_fraction must be in (0, 1] (the paper uses {PAPER_CROP_TOP_FRACTION}), "
                f"got {crop_top_fraction}")
        self.crop_top_fraction = crop_top_fraction
        self.load_depth = depth
        if not self.root.is_dir():
            raise MissingFileError(self.root, "Cityscapes root folder",
                                   "Give the folder that holds leftImg8bit_sequence/ and gtFine/")
        self.image_dir = self._image_dir()
        self._images: dict[tuple[str, int, int], Path] = {}
        self._labels: dict[str, Path] = {}
        self._instances: dict[str, Path] = {}
        self._disparity: dict[str, Path] = {}
        self._cameras: dict[str, Path] = {}
        self._index_files()
        centres = sorted(self._images)
        if frames == "annotated":
            centres = [c for c in centres if self._frame(c).stem in self._labels]
            if not centres:
                raise MissingFileError(self.root / "gtFine" / split,
                                       "Cityscapes gtFine labels (*_gtFine_labelIds.png)",
                                       "Unpack gtFine_trainvaltest.zip or use frames='all'")
        self.frames = [self._frame(c) for c in centres
                       if all((c[0], c[1], c[2] + o) in self._images for o in self.offsets)]
        if not self.frames:
            raise DatasetError(f"no Cityscapes frame under {self.image_dir} has a whole window "
                               f"{self.offsets}; sequences need leftImg8bit_sequence/")
        self._camera_cache: dict[Path, CityscapesCamera] = {}
        for frame in {(f.city, f.seq): f for f in self.frames}.values():
            self._camera(frame)         # a missing camera file fails here, not mid-training

    # -- index --------------------------------------------------------------------------------

    def _image_dir(self) -> Path:
        sequence = self.root / "leftImg8bit_sequence" / self.split
        if sequence.is_dir():
            return sequence
        single = self.root / "leftImg8bit" / self.split
        if self.offsets == (0,) and single.is_dir():
            return single
        raise MissingFileError(
            sequence, "Cityscapes image folder",
            "Unpack leftImg8bit_sequence_trainvaltest.zip (windows of several frames need the "
            "sequences; with offsets=(0,) leftImg8bit/ is enough)")

    def _frame(self, key: tuple[str, int, int]) -> CityscapesFrame:
        return CityscapesFrame(self.split, *key)

    def _index_files(self) -> None:
        for city_dir in sorted(p for p in self.image_dir.iterdir() if p.is_dir()):
            for name in (p.name for p in city_dir.iterdir()):
                match = _NAME.match(name)
                if match:
                    key = (match["city"], int(match["seq"]), int(match["frame"]))
                    self._images[key] = city_dir / name
            city = city_dir.name
            self._labels.update(_files(self.root / "gtFine" / self.split / city, "_gtFine_labelIds.png"))
            self._instances.update(
                _files(self.root / "gtFine" / self.split / city, "_gtFine_instanceIds.png"))
            for folder in ("disparity_sequence", "disparity"):
                self._disparity.update(_files(self.root / folder / self.split / city, "_disparity.png"))
            for folder in ("camera_sequence", "camera"):
                self._cameras.update(_files(self.root / folder / self.split / city, "_camera.json"))
        if not self._images:
            raise MissingFileError(self.image_dir / "<city>" / "<city>_<seq>_<frame>_leftImg8bit.png",
                                   "Cityscapes image", "Check the split name and the unpacked layout")

    def _camera_path(self, frame: CityscapesFrame) -> Path:
        """The frame's camera file, else its snippet's, else its city's (calibration is per car)."""
        if frame.stem in self._cameras:
            return self._cameras[frame.stem]
        snippet = f"{frame.city}_{frame.seq:06d}_"
        for prefix in (snippet, f"{frame.city}_"):
            stems = sorted(s for s in self._cameras if s.startswith(prefix))
            if stems:
                return self._cameras[stems[0]]
        raise MissingFileError(self.root / "camera" / self.split / frame.city / f"{frame.stem}_camera.json",
                               "Cityscapes camera file", "Unpack camera_trainvaltest.zip")

    def _camera(self, frame: CityscapesFrame) -> CityscapesCamera:
        path = self._camera_path(frame)
        if path not in self._camera_cache:
            self._camera_cache[path] = read_camera_json(path)
        return self._camera_cache[path]

    # -- samples ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.frames)

    @staticmethod
    def _read(path: Path, flags: int, what: str) -> np.ndarray:
        array = cv2.imread(str(path), flags)
        if array is None:
            raise MissingFileError(path, f"Cityscapes {what} (missing or unreadable)")
        return array

    def _load(self, index: int) -> Sample:
        centre = self.frames[index]
        window = [centre.moved(o) for o in self.offsets]
        images = np.stack([
            cv2.cvtColor(self._read(self._images[(f.city, f.seq, f.frame)], cv2.IMREAD_COLOR,
                                    "image"), cv2.COLOR_BGR2RGB) for f in window])
        camera = self._camera(centre)
        labels, instance_ids = None, None
        if centre.stem in self._labels:
            label_ids = self._read(self._labels[centre.stem], cv2.IMREAD_UNCHANGED, "labelIds")
            instance_path = self._instances.get(centre.stem)
            instance_ids = (None if instance_path is None
                            else self._read(instance_path, cv2.IMREAD_UNCHANGED, "instanceIds"))
            labels = labels_from_ids(label_ids, instance_ids)
        depth = None
        if self.load_depth and centre.stem in self._disparity:
            disparity = self._read(self._disparity[centre.stem], cv2.IMREAD_UNCHANGED, "disparity")
            depth = depth_from_disparity(disparity, camera.baseline_m, float(camera.K[0, 0]))
        sample = Sample(
            images=images, K=camera.K.copy(),
            stamps_s=np.array([f.frame / FRAME_RATE_HZ for f in window]), offsets=self.offsets,
            source=f"cityscapes:{centre.split}/{centre.city}/{centre.stem}", depth_m=depth,
            semantic=None if labels is None else labels.semantic,
            instances=None if instance_ids is None else labels.instances,
            panoptic=None if instance_ids is None else labels.panoptic)
        if self.crop_top_fraction is not None:
            height, width = sample.size
            sample = crop_sample(sample, 0, int(round(height * self.crop_top_fraction)), 0, width)
        return sample

    # -- description --------------------------------------------------------------------------

    def describe(self) -> DatasetSummary:
        first = self.frames[0]
        native = tuple(self._read(self._images[(first.city, first.seq, first.frame)],
                                  cv2.IMREAD_COLOR, "image").shape[:2])
        stems = {f.stem for f in self.frames}
        gt = []
        if self.load_depth and stems & set(self._disparity):
            gt.append("depth_m")
        if stems & set(self._labels):
            gt += ["semantic", "instances", "panoptic"]
        cropped = native if self.crop_top_fraction is None else (
            int(round(native[0] * self.crop_top_fraction)), native[1])
        return DatasetSummary(
            kind=self.kind, path=str(self.root), samples=len(self), frames=len(self._images),
            offsets=self.offsets, native_size=native, size=self.size or cropped,
            ground_truth=tuple(gt),
            details={"split": self.split, "annotated_samples": len(stems & set(self._labels)),
                     "crop_top_fraction": self.crop_top_fraction,
                     "cities": sorted({f.city for f in self.frames})})
