"""``build_loader``: a DataLoader of augmented :class:`~unified_perception.train.batch.Batch` from a
data mix, the same on every run for a seed, for one process or one rank of many.

Workers read samples and build the batches (augmentation + collate run in the worker). Each drawn
window carries its own augmentation seed from the sampler (``data_mix.SeededDraws``: a function of
seed, epoch, rank and position), so the batches do not depend on the number of workers and a run
resumed inside an epoch (``loader.sampler.set_start``) sees the batches an uninterrupted run would.
Call ``loader.sampler.set_epoch(epoch)`` at the start of every epoch.
"""

from __future__ import annotations

import random
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, get_worker_info

from unified_perception.data.sample import Sample
from unified_perception.train.augment import AugmentConfig, augment_row
from unified_perception.train.batch import Batch
from unified_perception.train.collate import concat_batches, sample_to_tensors
from unified_perception.train.data_mix import (
    MixConfig, MixedDataset, SeededSample, build_sampler, combine_seeds)


class BatchCollator:
    """``collate_fn``: samples -> tensors -> per-sample augmentation (``augment`` None: none) ->
    :class:`Batch`. A :class:`~unified_perception.train.data_mix.SeededSample` is augmented from its
    own seed; a plain :class:`Sample` from a generator of the process that first uses the collator
    (seeded by ``seed`` in the main process, by the worker's seed in a DataLoader worker)."""

    def __init__(self, augment: AugmentConfig | None, seed: int) -> None:
        self.augment = augment
        self.seed = int(seed)
        self._generator: torch.Generator | None = None

    def _random(self, item: Sample | SeededSample) -> torch.Generator:
        if isinstance(item, SeededSample):
            return torch.Generator().manual_seed(item.seed)
        if self._generator is None:
            info = get_worker_info()
            self._generator = torch.Generator().manual_seed(self.seed if info is None else info.seed)
        return self._generator

    def __call__(self, items: Sequence[Sample | SeededSample]) -> Batch:
        rows = []
        for item in items:
            row = sample_to_tensors(item.sample if isinstance(item, SeededSample) else item)
            if self.augment is not None:
                row = augment_row(row, self.augment, self._random(item))
            rows.append(row)
        return concat_batches(rows)


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: numpy and ``random`` from the worker's torch seed; one torch thread per
    worker (the workers already run in parallel)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    torch.set_num_threads(1)


def build_loader(config: MixConfig, batch_size: int, workers: int, seed: int, rank: int = 0,
                 world_size: int = 1, augment: bool | AugmentConfig = True,
                 dataset: MixedDataset | None = None, pin_memory: bool | None = None) -> DataLoader:
    """DataLoader of :class:`Batch` over the mix ``config`` (or an already opened ``dataset`` of it).

    ``augment``: True for :class:`AugmentConfig` defaults, False for none (validation), or a
    config. ``rank``/``world_size``: this process's share under DDP (see
    :func:`~unified_perception.train.data_mix.build_sampler`). Incomplete last batches are dropped
    so every step has ``batch_size`` samples; workers stay alive across epochs (``workers > 0``);
    batches are pinned when ``pin_memory`` (default: when CUDA is available).
    """
    if batch_size < 1 or workers < 0:
        raise ValueError(f"batch_size must be >= 1 and workers >= 0, got {batch_size}, {workers}")
    dataset = dataset if dataset is not None else MixedDataset(config)
    augment_config = (AugmentConfig() if augment is True else None if augment is False else augment)
    sampler = build_sampler(dataset, seed, rank, world_size)
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
        collate_fn=BatchCollator(augment_config, combine_seeds(seed, rank, 1)), drop_last=True,
        worker_init_fn=seed_worker if workers > 0 else None, persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        generator=torch.Generator().manual_seed(combine_seeds(seed, rank, 2)))
