"""The training data mix: several data sets (synthetic or users' bags, KITTI raw, Cityscapes), each
with a sampling weight, at several frame gaps, as one map-style dataset of
:class:`~unified_perception.data.sample.Sample` windows plus a sampler that draws by weight.

The mix is configured in YAML (validated on load; a bad key or value names itself)::

    size: [96, 320]          # (H, W) every sample is resized to (optional; needed to mix sizes)
    offsets: [-1, 0, 1]      # the window at frame gap 1 (default t-1, t, t+1)
    frame_gaps: 2            # also windows whose frames lie 2 recorded frames apart (default 1)
    samples_per_epoch: 2000  # draws per epoch over all ranks (default: the number of windows)
    datasets:
      - kind: rosbag          # rosbag | kitti_raw | cityscapes (data.factory)
        path: out/synth/seed0
        weight: 2.0           # share of the draws (relative to the other entries)
      - kind: rosbag          # a user's own bag with its topic map
        path: /data/bags/drive_03
        weight: 1.0
        options: {topics: config/my_car_topics.yaml}
      - kind: kitti_raw
        path: /data/kitti_raw
        weight: 1.0
        options: {split: splits/eigen_zhou_train.txt}

``options`` are the reader's keyword arguments (``open_dataset``) except ``offsets`` and ``size``,
which the mix sets. Frame gaps: each data set is opened once per gap ``g`` in ``1..frame_gaps``
with ``offsets * g``; the gaps of one data set share its weight equally and the windows of one gap
share that equally. Without any ``weight`` every window is equally likely (torch's
``DistributedSampler``); weights must be given for every entry or none.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, NamedTuple, Sequence

import numpy as np
import torch
import yaml
from torch.utils.data import Dataset, DistributedSampler, Sampler

from unified_perception.data.base import SequenceDataset
from unified_perception.data.errors import DatasetConfigError, DatasetError
from unified_perception.data.factory import ALIASES, DATASET_KINDS, open_dataset
from unified_perception.data.sample import DEFAULT_OFFSETS, Sample, check_offsets, check_size

log = logging.getLogger(__name__)

MIX_OWNED_OPTIONS = ("offsets", "size")
"""Reader options the mix sets itself (per frame gap / for all data sets)."""


@dataclass(frozen=True)
class DatasetEntry:
    """One data set of the mix: reader ``kind``, ``path``, sampling ``weight`` (None = unweighted)
    and the reader's other ``options``."""

    kind: str
    path: Path
    weight: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MixConfig:
    """The whole mix (see the module docstring for the YAML form)."""

    datasets: tuple[DatasetEntry, ...]
    frame_gaps: int = 1
    offsets: tuple[int, ...] = DEFAULT_OFFSETS
    size: tuple[int, int] | None = None
    samples_per_epoch: int | None = None

    @property
    def weighted(self) -> bool:
        return any(entry.weight is not None for entry in self.datasets)


# -- schema ------------------------------------------------------------------------------------

def _check_keys(values: Any, schema: type, where: str) -> Mapping[str, Any]:
    """``values`` as a mapping whose keys are fields of the dataclass ``schema``, with every field
    that has no default present."""
    if not isinstance(values, Mapping):
        raise DatasetConfigError(f"{where} must be a mapping of keys to values, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in values:
        if key not in fields:
            raise DatasetConfigError(f"{where}: unknown key '{key}'; the keys are: {', '.join(fields)}")
    for name, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and name not in values:
            raise DatasetConfigError(f"{where}: key '{name}' is missing; add it "
                                     f"(the keys are: {', '.join(fields)})")
    return values


def _positive_int(value: Any, where: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DatasetConfigError(f"{where} = {value!r}: {what} must be a whole number >= 1")
    return value


def _parse_entry(values: Any, where: str, base_dir: Path | None) -> DatasetEntry:
    values = _check_keys(values, DatasetEntry, where)
    kind = values["kind"]
    if ALIASES.get(kind, kind) not in DATASET_KINDS:
        raise DatasetConfigError(f"{where}.kind = {kind!r}: use one of {', '.join(DATASET_KINDS)}")
    if not isinstance(values["path"], (str, Path)) or not str(values["path"]):
        raise DatasetConfigError(f"{where}.path = {values['path']!r}: give the data set's folder or bag")
    path = Path(values["path"]).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    if not path.exists():
        raise DatasetConfigError(f"{where}.path: {path} does not exist; fix the path (relative paths "
                                 f"are relative to {base_dir or 'the working directory'}) or remove "
                                 f"the entry")
    weight = values.get("weight")
    if weight is not None:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                or not math.isfinite(weight) or weight <= 0:
            raise DatasetConfigError(f"{where}.weight = {weight!r}: use a positive number (the data "
                                     f"set's share of the draws, relative to the other entries)")
        weight = float(weight)
    options = values.get("options") or {}
    if not isinstance(options, Mapping):
        raise DatasetConfigError(f"{where}.options must be a mapping of reader options, got {options!r}")
    for key in MIX_OWNED_OPTIONS:
        if key in options:
            raise DatasetConfigError(f"{where}.options.{key}: the mix sets '{key}' for every data set; "
                                     f"move it to the top level of the data mix")
    return DatasetEntry(kind=ALIASES.get(kind, kind), path=path, weight=weight, options=dict(options))


def parse_mix_config(values: Any, base_dir: str | Path | None = None,
                     origin: str = "data mix") -> MixConfig:
    """Validate a mix given as parsed YAML (see the module docstring). Relative data set paths are
    taken relative to ``base_dir`` (None: the working directory). Raises
    :class:`~unified_perception.data.errors.DatasetConfigError` naming the bad key."""
    base = None if base_dir is None else Path(base_dir)
    values = _check_keys(values, MixConfig, origin)
    entries = values["datasets"]
    if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)) or not entries:
        raise DatasetConfigError(f"{origin}.datasets must be a non-empty list of data sets "
                                 f"({{kind, path, weight, options}})")
    datasets = tuple(_parse_entry(e, f"{origin}.datasets[{i}]", base) for i, e in enumerate(entries))
    weighted = [d.weight is not None for d in datasets]
    if any(weighted) and not all(weighted):
        missing = weighted.index(False)
        raise DatasetConfigError(f"{origin}.datasets[{missing}].weight is missing while other entries "
                                 f"have one; give every entry a weight, or none (uniform over windows)")
    frame_gaps = _positive_int(values.get("frame_gaps", 1), f"{origin}.frame_gaps", "frame_gaps")
    samples = values.get("samples_per_epoch")
    if samples is not None:
        samples = _positive_int(samples, f"{origin}.samples_per_epoch", "samples_per_epoch")
    try:
        offsets = check_offsets(values.get("offsets", DEFAULT_OFFSETS))
        size = check_size(values.get("size"))
    except DatasetConfigError as err:
        raise DatasetConfigError(f"{origin}: {err}") from None
    return MixConfig(datasets=datasets, frame_gaps=frame_gaps, offsets=offsets, size=size,
                     samples_per_epoch=samples)


def load_mix_config(path: str | Path, base_dir: str | Path | None = None) -> MixConfig:
    """Read and validate a mix YAML file (relative data set paths: see :func:`parse_mix_config`)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetConfigError(f"data mix file {path} does not exist; give the YAML file of the mix")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise DatasetConfigError(f"data mix file {path} is not valid YAML: {err}") from None
    return parse_mix_config(values, base_dir, origin=str(path))


# -- dataset -----------------------------------------------------------------------------------

class MixDraw(NamedTuple):
    """One draw of a sampler: the window ``index`` and the seed of its augmentation."""

    index: int
    seed: int


class SeededSample(NamedTuple):
    """A window with the seed its augmentation draws from."""

    sample: Sample
    seed: int


@dataclass(frozen=True)
class MixPart:
    """The windows of one data set at one frame gap: dataset indices ``start .. start + len(reader)``."""

    entry: int
    gap: int
    reader: SequenceDataset
    start: int

    @property
    def indices(self) -> range:
        return range(self.start, self.start + len(self.reader))


def _open_part(config: MixConfig, index: int, gap: int) -> SequenceDataset | None:
    entry = config.datasets[index]
    where = f"datasets[{index}] ({entry.kind} {entry.path})"
    offsets = tuple(o * gap for o in config.offsets)
    try:
        reader = open_dataset(entry.kind, entry.path, offsets=offsets, size=config.size,
                              **dict(entry.options))
    except DatasetConfigError as err:
        raise DatasetConfigError(f"data mix {where}: {err}") from None
    except DatasetError as err:
        if gap == 1:
            raise DatasetError(f"data mix {where}: {err}") from None
        reader = None                      # the data set opened at gap 1: too short for this gap
    if reader is None or len(reader) == 0:
        if gap == 1:
            raise DatasetError(f"data mix {where}: no window {list(offsets)} fits in the data set; "
                               f"use a longer recording or a smaller window")
        log.info("data mix %s: no window at frame gap %d %s; that gap is skipped", where, gap, offsets)
        return None
    return reader


class MixedDataset(Dataset):
    """All windows of a :class:`MixConfig` as one map-style dataset of :class:`Sample` (resized to
    ``config.size`` by the readers). Index order: entries in order, gaps 1..k within each."""

    def __init__(self, config: MixConfig) -> None:
        self.config = config
        parts: list[MixPart] = []
        start = 0
        for index in range(len(config.datasets)):
            for gap in range(1, config.frame_gaps + 1):
                reader = _open_part(config, index, gap)
                if reader is not None:
                    parts.append(MixPart(index, gap, reader, start))
                    start += len(reader)
        self.parts = tuple(parts)
        self._starts = np.array([p.start for p in parts], dtype=np.int64)
        self._length = start

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int | MixDraw) -> Sample | SeededSample:
        """The window at ``index``; for a :class:`MixDraw` (what :func:`build_sampler` yields) the
        window with the draw's augmentation seed."""
        if isinstance(index, MixDraw):
            return SeededSample(self[index.index], index.seed)
        if not 0 <= index < self._length:
            raise IndexError(f"window index {index} out of range for {self._length} windows")
        part = self.parts[int(np.searchsorted(self._starts, index, side="right")) - 1]
        return part.reader[index - part.start]

    def probabilities(self) -> np.ndarray:
        """``[len] float64`` draw probability of each window: an entry's weight (1 when unweighted
        mixes are drawn by weight) split equally over its gaps, then over the gap's windows."""
        weights = [e.weight if e.weight is not None else 1.0 for e in self.config.datasets]
        gaps_of = np.bincount([p.entry for p in self.parts], minlength=len(weights))
        total = sum(w for w, g in zip(weights, gaps_of) if g)
        out = np.empty(self._length, dtype=np.float64)
        for part in self.parts:
            mass = weights[part.entry] / total / gaps_of[part.entry]
            out[part.start:part.start + len(part.reader)] = mass / len(part.reader)
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-ready description for logs and the model metadata's data summary."""
        parts = [{"entry": p.entry, "frame_gap": p.gap, "weight": self.config.datasets[p.entry].weight,
                  **p.reader.describe().to_dict()} for p in self.parts]
        return {"datasets": parts, "samples": self._length, "frame_gaps": self.config.frame_gaps,
                "size": None if self.config.size is None else list(self.config.size)}


# -- sampling ----------------------------------------------------------------------------------

def combine_seeds(*values: int) -> int:
    """One 63-bit seed from several integers (independent streams per (seed, epoch, rank))."""
    return int(np.random.SeedSequence([int(v) for v in values]).generate_state(2, np.uint64)[0] >> 1)


class WeightedMixSampler(Sampler[int]):
    """Draws window indices with replacement by ``probabilities``, ``num_samples`` per epoch over
    all ranks (each rank ``ceil(num_samples / world_size)``), the same on every run for a seed.

    With several ranks every group of indices (one data set at one gap, ``groups``) is shuffled by
    ``(seed, epoch)`` (the same on all ranks) and dealt out, so each rank draws from its own
    disjoint share with the group's whole weight, from a stream seeded by ``(seed, epoch, rank)``.
    A group with fewer windows than ranks is shared by all ranks (it cannot be split). Call
    :meth:`set_epoch` at the start of each epoch.
    """

    def __init__(self, probabilities: np.ndarray, groups: Sequence[range], num_samples: int,
                 seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1} (world size {world_size})")
        self.probabilities = np.asarray(probabilities, dtype=np.float64)
        self.groups = tuple(groups)
        self.num_samples = int(num_samples)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.world_size)

    def share(self) -> tuple[np.ndarray, np.ndarray]:
        """This rank's ``(indices, probabilities)`` for the current epoch."""
        if self.world_size == 1:
            return np.arange(self.probabilities.size), self.probabilities
        shuffle = np.random.default_rng(combine_seeds(self.seed, self.epoch))
        kept, probs = [], []
        for group in self.groups:
            indices = np.asarray(group)[shuffle.permutation(len(group))]
            mine = indices[self.rank::self.world_size] if len(group) >= self.world_size else indices
            kept.append(mine)
            probs.append(np.full(mine.size, self.probabilities[indices].sum() / mine.size))
        return np.concatenate(kept), np.concatenate(probs)

    def __iter__(self) -> Iterator[int]:
        indices, probs = self.share()
        generator = torch.Generator().manual_seed(combine_seeds(self.seed, self.epoch, self.rank))
        draws = torch.multinomial(torch.from_numpy(probs), len(self), replacement=True,
                                  generator=generator)
        return iter(indices[draws.numpy()].tolist())


class SeededDraws(Sampler[MixDraw]):
    """Wraps a sampler of window indices: yields :class:`MixDraw` whose augmentation seed is a
    function of ``(seed, epoch, rank, position in the epoch)``, so augmentation does not depend on
    the number of workers and an epoch resumed at a position (:meth:`set_start`) continues exactly
    as it would have run."""

    def __init__(self, base: Sampler[int], seed: int, rank: int = 0) -> None:
        self.base, self.seed, self.rank = base, int(seed), int(rank)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` draws of the epoch (resuming inside an epoch)."""
        self.start = int(start)

    def __len__(self) -> int:
        return max(len(self.base) - self.start, 0)       # type: ignore[arg-type]

    def __iter__(self) -> Iterator[MixDraw]:
        for position, index in enumerate(self.base):
            if position >= self.start:
                yield MixDraw(int(index), combine_seeds(self.seed, self.epoch, self.rank, position))


def build_sampler(dataset: MixedDataset, seed: int, rank: int = 0, world_size: int = 1) -> SeededDraws:
    """The sampler of a mix: :class:`WeightedMixSampler` when the mix has weights or a
    ``samples_per_epoch``, else torch's ``DistributedSampler`` (shuffled, seeded, every window once
    per epoch over all ranks), wrapped in :class:`SeededDraws`. Call ``set_epoch`` every epoch."""
    config = dataset.config
    base: Sampler[int]
    if config.weighted or config.samples_per_epoch is not None:
        base = WeightedMixSampler(dataset.probabilities(), [p.indices for p in dataset.parts],
                                  config.samples_per_epoch or len(dataset), seed, rank, world_size)
    else:
        base = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    return SeededDraws(base, seed, rank)
