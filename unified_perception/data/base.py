"""What every reader shares: map-style access (len + getitem), iteration, resizing, a description."""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Sequence

from unified_perception.data.resize import resize_sample
from unified_perception.data.sample import DEFAULT_OFFSETS, Sample, check_offsets, check_size


@dataclass(frozen=True)
class DatasetSummary:
    """A description of a data set for logs and the model metadata's ``data_summary``.

    ``samples``: windows the reader yields; ``frames``: camera frames it indexes; sizes are
    ``(H, W)`` pixels (``size`` is what samples come out at); ``ground_truth``: the
    :class:`Sample` fields that are filled.
    """

    kind: str
    path: str
    samples: int
    frames: int
    offsets: tuple[int, ...]
    native_size: tuple[int, int]
    size: tuple[int, int]
    ground_truth: tuple[str, ...]
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (tuples become lists)."""
        out = asdict(self)
        for key in ("offsets", "native_size", "size", "ground_truth"):
            out[key] = list(out[key])
        return out


class SequenceDataset(abc.ABC):
    """Map-style reader of frame windows. Subclasses implement :meth:`_load` and :meth:`describe`.

    ``offsets``: the window relative to the centre frame; ``size``: ``(H, W)`` to resize samples
    to (None = native size).
    """

    kind: str = ""

    def __init__(self, offsets: Sequence[int] = DEFAULT_OFFSETS,
                 size: Sequence[int] | None = None) -> None:
        self.offsets = check_offsets(offsets)
        self.size = check_size(size)

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of windows (samples)."""

    @abc.abstractmethod
    def _load(self, index: int) -> Sample:
        """The sample at ``index`` (0 <= index < len) at native size (or already at ``size``)."""

    @abc.abstractmethod
    def describe(self) -> DatasetSummary:
        """Frames, sizes and which ground truth exists."""

    def __getitem__(self, index: int) -> Sample:
        length = len(self)
        if not -length <= index < length:
            raise IndexError(f"sample index {index} out of range for {length} samples")
        return resize_sample(self._load(index % length), self.size)

    def __iter__(self) -> Iterator[Sample]:
        for index in range(len(self)):
            yield self[index]

    def _window_centres(self, num_frames: int) -> range:
        """Centre indices of a sequence of ``num_frames`` whose whole window lies inside it."""
        return range(-self.offsets[0], num_frames - self.offsets[-1])


def data_summary(datasets: Sequence[SequenceDataset]) -> dict[str, Any]:
    """JSON-ready summary of the data a model was trained on (``MetadataKey.DATA_SUMMARY``)."""
    described = [d.describe().to_dict() for d in datasets]
    return {"datasets": described, "samples": sum(d["samples"] for d in described)}
