"""Data set readers that yield numpy samples: rosbags, KITTI raw, Cityscapes.

Every reader is map-style (``len`` + ``[i]``) and iterable, yields :class:`Sample` windows of
consecutive frames, and describes itself with :meth:`describe` (a :class:`DatasetSummary`). No torch
here: train/ wraps readers in a torch Dataset.
"""

from unified_perception.data.base import DatasetSummary, SequenceDataset, data_summary
from unified_perception.data.errors import DatasetConfigError, DatasetError, MissingFileError
from unified_perception.data.factory import DATASET_KINDS, open_dataset
from unified_perception.data.sample import DEFAULT_OFFSETS, Sample

__all__ = [
    "DATASET_KINDS", "DEFAULT_OFFSETS", "DatasetConfigError", "DatasetError", "DatasetSummary",
    "MissingFileError", "Sample", "SequenceDataset", "data_summary", "open_dataset",
]
