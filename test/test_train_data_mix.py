"""The YAML data mix over real readers: weights, frame gaps, rank shares and config errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from torch.utils.data import DistributedSampler

from train_data_helpers import (  # noqa: F401  (fixtures)
    BAG_FRAMES, cityscapes_root, kitti_root, synthetic_bag)
from unified_perception.data.errors import DatasetConfigError
from unified_perception.train.collate import collate_samples
from unified_perception.train.data_mix import (
    MixedDataset, WeightedMixSampler, build_sampler, load_mix_config, parse_mix_config)


def indices(sampler) -> list[int]:
    return [draw.index for draw in sampler]


def mix(**top) -> dict:
    return {"datasets": top.pop("datasets"), **top}


def test_draws_follow_the_data_set_weights(synthetic_bag: Path, kitti_root: Path) -> None:
    config = parse_mix_config(mix(datasets=[
        {"kind": "rosbag", "path": str(synthetic_bag), "weight": 3.0},
        {"kind": "kitti_raw", "path": str(kitti_root), "weight": 1.0}], size=[32, 64],
        samples_per_epoch=4000))
    dataset = MixedDataset(config)
    assert len(dataset) == (BAG_FRAMES - 2) + 2
    sampler = build_sampler(dataset, seed=5)
    assert isinstance(sampler.base, WeightedMixSampler) and len(sampler) == 4000
    draws = np.array(indices(sampler))
    from_bag = draws < BAG_FRAMES - 2
    assert from_bag.mean() == pytest.approx(0.75, abs=0.03)
    # within a data set every window is about as likely as the others
    counts = np.bincount(draws, minlength=len(dataset))
    assert counts[:5].min() > 0.7 * 3000 / 5 and counts[5:].min() > 0.7 * 1000 / 2
    assert list(build_sampler(dataset, seed=5)) == list(sampler)        # seeded, with the same
    assert len({draw.seed for draw in sampler}) == 4000                  # augmentation seeds
    assert dataset[6].source.startswith("kitti_raw") and dataset[6].size == (32, 64)


def test_frame_gaps_give_windows_whose_frames_lie_1_to_k_recorded_frames_apart(
        synthetic_bag: Path, kitti_root: Path) -> None:
    config = parse_mix_config(mix(datasets=[{"kind": "rosbag", "path": str(synthetic_bag)},
                                            {"kind": "kitti", "path": str(kitti_root)}],
                                  frame_gaps=3, size=[64, 128]))
    dataset = MixedDataset(config)
    # 7 bag frames: 5, 3 and 1 windows at gaps 1, 2, 3; the 4 KITTI frames only fit gap 1
    assert [(p.entry, p.gap, len(p.reader)) for p in dataset.parts] == [
        (0, 1, 5), (0, 2, 3), (0, 3, 1), (1, 1, 2)]
    batch = collate_samples([dataset[i] for i in range(len(dataset))])
    assert batch.frame_gap.tolist() == [1] * 5 + [2] * 3 + [3] + [1] * 2
    assert batch.offsets == (-1, 0, 1)
    steps = np.diff(batch.stamps_s.numpy(), axis=1) / batch.frame_gap.numpy()[:, None]
    np.testing.assert_allclose(steps[:9], 0.1, atol=1e-6)              # the bag records at 10 Hz
    assert batch.has_scene_flow.tolist()[:9] == [True] * 5 + [False] * 4
    probabilities = dataset.probabilities()
    assert probabilities.sum() == pytest.approx(1.0)
    assert probabilities[:9].sum() == pytest.approx(0.5)                # unweighted: 1 : 1 entries
    assert probabilities[8] == pytest.approx(0.5 / 3)                  # each gap a third of the bag


def test_two_ranks_draw_disjoint_deterministic_shares(synthetic_bag: Path, kitti_root: Path) -> None:
    config = parse_mix_config(mix(datasets=[
        {"kind": "rosbag", "path": str(synthetic_bag), "weight": 1.0},
        {"kind": "kitti_raw", "path": str(kitti_root), "weight": 1.0}], frame_gaps=2,
        size=[32, 64], samples_per_epoch=64))
    dataset = MixedDataset(config)
    ranks = [build_sampler(dataset, seed=1, rank=r, world_size=2) for r in (0, 1)]
    shares = [set(indices(s)) for s in ranks]
    assert shares[0] and shares[1] and not shares[0] & shares[1]
    assert all(len(list(s)) == 32 for s in ranks)
    assert list(ranks[0]) == list(build_sampler(dataset, seed=1, rank=0, world_size=2))
    before = list(ranks[0])
    ranks[0].set_epoch(1)
    assert list(ranks[0]) != before
    # unweighted mixes use torch's DistributedSampler: every window once per epoch over the ranks
    plain = MixedDataset(parse_mix_config(mix(datasets=[{"kind": "rosbag", "path": str(synthetic_bag)}])))
    samplers = [build_sampler(plain, seed=1, rank=r, world_size=2) for r in (0, 1)]
    assert all(isinstance(s.base, DistributedSampler) for s in samplers)
    assert sorted(set(indices(samplers[0])) | set(indices(samplers[1]))) == list(range(len(plain)))


def test_an_epoch_resumed_at_a_position_continues_with_the_same_draws_and_seeds(
        synthetic_bag: Path) -> None:
    config = parse_mix_config(mix(datasets=[{"kind": "rosbag", "path": str(synthetic_bag), "weight": 1}],
                                  samples_per_epoch=12))
    sampler = build_sampler(MixedDataset(config), seed=2)
    sampler.set_epoch(3)
    whole = list(sampler)
    sampler.set_start(5)
    assert len(sampler) == 7 and list(sampler) == whole[5:]
    sampler.set_start(0)
    sampler.set_epoch(4)
    assert indices(sampler) != [d.index for d in whole]


def test_yaml_file_with_relative_paths_loads(tmp_path: Path, synthetic_bag: Path,
                                             cityscapes_root: Path) -> None:
    text = f"""
size: [32, 64]
offsets: [-1, 0, 1]
datasets:
  - kind: rosbag
    path: {synthetic_bag}
    weight: 2
    options: {{topics: null}}
  - kind: cityscapes
    path: {cityscapes_root.name}
    weight: 1
    options: {{split: train, frames: annotated}}
"""
    path = tmp_path / "mix.yaml"
    path.write_text(text)
    config = load_mix_config(path, base_dir=cityscapes_root.parent)
    assert config.datasets[1].path == cityscapes_root and config.datasets[1].options["frames"] == "annotated"
    dataset = MixedDataset(config)
    assert len(dataset) == 5 + 1
    summary = dataset.summary()
    assert [d["kind"] for d in summary["datasets"]] == ["rosbag", "cityscapes"]
    yaml.safe_dump(summary)                                             # plain data for metadata


@pytest.mark.parametrize("change, message", [
    ({"sampler": "weighted"}, "unknown key 'sampler'; the keys are: datasets, frame_gaps"),
    ({"frame_gaps": 0}, r"frame_gaps = 0: frame_gaps must be a whole number >= 1"),
    ({"datasets": []}, "datasets must be a non-empty list"),
    ({"datasets": [{"kind": "rosbag"}]}, r"datasets\[0\]: key 'path' is missing"),
    ({"datasets": [{"kind": "nuscenes", "path": "."}]}, r"datasets\[0\].kind = 'nuscenes': use one of"),
    ({"datasets": [{"kind": "rosbag", "path": "no/such/bag"}]},
     r"datasets\[0\].path: no/such/bag does not exist; fix the path"),
    ({"datasets": [{"kind": "rosbag", "path": ".", "weight": -1}]},
     r"datasets\[0\].weight = -1: use a positive number"),
    ({"datasets": [{"kind": "rosbag", "path": ".", "weight": "high"}]}, r"datasets\[0\].weight = 'high'"),
    ({"datasets": [{"kind": "rosbag", "path": ".", "wieght": 1}]}, r"datasets\[0\]: unknown key 'wieght'"),
    ({"datasets": [{"kind": "rosbag", "path": ".", "options": {"offsets": [-1, 0]}}]},
     r"datasets\[0\].options.offsets: the mix sets 'offsets'"),
    ({"datasets": [{"kind": "rosbag", "path": ".", "weight": 1}, {"kind": "rosbag", "path": "."}]},
     r"datasets\[1\].weight is missing while other entries have one"),
    ({"size": [0, 64]}, "size must be positive"),
])
def test_bad_mix_configs_give_one_message_that_names_the_key(change: dict, message: str) -> None:
    values = {"datasets": [{"kind": "rosbag", "path": "."}], **change}
    with pytest.raises(DatasetConfigError, match=message):
        parse_mix_config(values)


def test_reader_errors_name_the_entry(synthetic_bag: Path, kitti_root: Path) -> None:
    config = parse_mix_config(mix(datasets=[
        {"kind": "rosbag", "path": str(synthetic_bag)},
        {"kind": "kitti_raw", "path": str(kitti_root), "options": {"camera": "l", "lidar": True}}]))
    with pytest.raises(DatasetConfigError, match=r"datasets\[1\] \(kitti_raw .*option 'lidar' is not "
                                                 r"known to the kitti_raw reader"):
        MixedDataset(config)
    with pytest.raises(DatasetConfigError, match="data mix file .*missing.yaml does not exist"):
        load_mix_config(kitti_root / "missing.yaml")
