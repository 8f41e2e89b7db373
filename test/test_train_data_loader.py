"""The DataLoader of Batches with worker processes, and the synthetic bags rendered once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from train_data_helpers import BAG_FRAMES, BAG_SIZE, kitti_root, synthetic_bag  # noqa: F401
from unified_perception.data import open_dataset
from unified_perception.train.batch import Batch
from unified_perception.train.data_mix import parse_mix_config
from unified_perception.train.loader import build_loader
from unified_perception.train.synthetic_bags import render_synthetic_bags, synthetic_bag_name


def first_batch(loader) -> Batch:
    return next(iter(loader))


def assert_same(a: Batch, b: Batch) -> bool:
    return all(torch.equal(getattr(a, f.name), getattr(b, f.name)) if isinstance(getattr(a, f.name), torch.Tensor)
               else getattr(a, f.name) == getattr(b, f.name) for f in dataclasses.fields(Batch))


def test_two_workers_yield_batches_and_the_same_seed_gives_the_same_first_batch(
        synthetic_bag: Path, kitti_root: Path) -> None:
    config = parse_mix_config({"size": [32, 64], "frame_gaps": 2, "samples_per_epoch": 8, "datasets": [
        {"kind": "rosbag", "path": str(synthetic_bag), "weight": 1.0},
        {"kind": "kitti_raw", "path": str(kitti_root), "weight": 1.0}]})
    loader = build_loader(config, batch_size=2, workers=2, seed=4)
    batches = list(loader)
    assert len(batches) == 4 and all(isinstance(b, Batch) for b in batches)
    assert batches[0].images.shape == (2, 3, 3, 32, 64)
    # augmented: some rows carry a jittered network input, the originals stay for the losses
    assert any(not torch.equal(b.network_images, b.images) for b in batches)
    again = build_loader(config, batch_size=2, workers=2, seed=4)
    assert assert_same(first_batch(again), batches[0])
    other = build_loader(config, batch_size=2, workers=2, seed=5)
    assert not assert_same(first_batch(other), batches[0])
    in_process = build_loader(config, batch_size=2, workers=0, seed=4)  # augmentation seeds come
    assert all(assert_same(x, y) for x, y in zip(in_process, batches))   # with the draws
    plain = build_loader(config, batch_size=2, workers=0, seed=4, augment=False)
    batch = first_batch(plain)
    assert torch.equal(batch.network_images, batch.images)


def test_synthetic_bags_are_rendered_once_and_then_reused(synthetic_bag: Path) -> None:
    out_dir = synthetic_bag.parent
    metadata = synthetic_bag / "metadata.yaml"
    written = metadata.stat().st_mtime_ns
    again = render_synthetic_bags(out_dir, [0], BAG_FRAMES, BAG_SIZE)
    assert again == [synthetic_bag] and metadata.stat().st_mtime_ns == written
    assert synthetic_bag.name == synthetic_bag_name(0, BAG_FRAMES, BAG_SIZE)
    assert [p.name for p in out_dir.iterdir() if p.name.startswith(".")] == []    # no staging left
    reader = open_dataset("rosbag", synthetic_bag)
    assert reader.describe().native_size == BAG_SIZE and len(reader) == BAG_FRAMES - 2
