"""``open_dataset(kind, path, **options)``: one entry point for every reader."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from unified_perception.data.base import SequenceDataset
from unified_perception.data.errors import DatasetConfigError

DATASET_KINDS: dict[str, tuple[str, str]] = {
    "rosbag": ("unified_perception.data.rosbag", "RosbagSequenceReader"),
    "kitti_raw": ("unified_perception.data.kitti", "KittiRawReader"),
    "cityscapes": ("unified_perception.data.cityscapes", "CityscapesReader"),
}
"""Data set kind -> (module, reader class). Modules are imported only when their kind is opened."""

ALIASES = {"bag": "rosbag", "kitti": "kitti_raw"}


def reader_class(kind: str) -> type[SequenceDataset]:
    """The reader class of a data set kind (``rosbag``, ``kitti_raw``, ``cityscapes``)."""
    name = ALIASES.get(kind, kind)
    if name not in DATASET_KINDS:
        raise DatasetConfigError(
            f"unknown data set kind '{kind}'; use one of: {', '.join(DATASET_KINDS)}")
    module_name, class_name = DATASET_KINDS[name]
    return getattr(importlib.import_module(module_name), class_name)


def open_dataset(kind: str, path: str | Path, **options: Any) -> SequenceDataset:
    """Open a data set: ``open_dataset("kitti_raw", "/data/kitti", split="eigen_train.txt")``.

    ``options`` are the reader's keyword arguments (all take ``offsets`` and ``size``); an option
    the reader does not know raises :class:`DatasetConfigError` listing the ones it does.
    """
    cls = reader_class(kind)
    known = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "path")]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise DatasetConfigError(
            f"option '{unknown[0]}' is not known to the {cls.kind} reader; its options are: "
            f"{', '.join(known)}")
    return cls(path, **options)
