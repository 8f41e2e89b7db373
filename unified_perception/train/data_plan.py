"""A recipe's data: the training mix (synthetic bags rendered once + the recipe's data sets) and the
held-out validation sequences, at the model's input size.

Synthetic sequences are rendered by the simulator into ``data.synthetic.root`` the first time a
recipe needs them (:func:`render_recipe_bags`, rank 0 only) and read back as bags afterwards:
nothing is rendered per step. Validation sequences are read frame by frame (offset 0) in order,
so validation runs the model as the car does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from unified_perception.data.base import SequenceDataset
from unified_perception.data.factory import open_dataset
from unified_perception.train.checkpoint import ModelConfig
from unified_perception.train.data_mix import MixConfig, MixedDataset, parse_mix_config
from unified_perception.train.loader import build_loader
from unified_perception.train.recipe import Recipe
from unified_perception.train.synthetic_bags import render_synthetic_bags, synthetic_bag_name


@dataclass
class TrainingData:
    """The opened training mix and validation sequences of one recipe."""

    mix: MixConfig
    dataset: MixedDataset
    val_datasets: list[SequenceDataset]
    workers: int
    augment: bool

    @property
    def summary(self) -> dict[str, Any]:
        """JSON-ready description for checkpoints and the ONNX metadata's ``data_summary``."""
        return {"train": self.dataset.summary(),
                "validation": [d.describe().to_dict() for d in self.val_datasets]}

    def loader(self, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
               pin_memory: bool | None = None) -> DataLoader:
        return build_loader(self.mix, batch_size, self.workers, seed, rank, world_size,
                            augment=self.augment, dataset=self.dataset, pin_memory=pin_memory)


def synthetic_bags(recipe: Recipe, render: bool = True) -> tuple[list[Path], list[Path]]:
    """(train, validation) bag paths of the recipe's synthetic section, rendering missing ones
    when ``render``."""
    syn = recipe.data.synthetic
    if syn is None:
        return [], []
    size = (syn.height, syn.width)
    if render:
        train = render_synthetic_bags(syn.root, syn.train_seeds, syn.frames, size, progress=True)
        val = render_synthetic_bags(syn.root, syn.val_seeds, syn.frames, size, progress=True)
        return train, val
    names = lambda seeds: [syn.root / synthetic_bag_name(s, syn.frames, size) for s in seeds]  # noqa: E731
    return names(syn.train_seeds), names(syn.val_seeds)


def render_recipe_bags(recipe: Recipe) -> None:
    """Render the synthetic bags a recipe needs that are not there yet."""
    synthetic_bags(recipe, render=True)


def training_data(recipe: Recipe, model: ModelConfig) -> TrainingData:
    """Open the recipe's training mix and validation sequences (bags must exist: call
    :func:`render_recipe_bags` first, on one rank)."""
    data = recipe.data
    train_bags, val_bags = synthetic_bags(recipe, render=False)
    weight = data.synthetic.weight if data.synthetic is not None else None
    entries = [{"kind": "rosbag", "path": str(p), "weight": weight} for p in train_bags]
    entries += [dict(e) for e in data.datasets]
    if entries and any("weight" in e and e["weight"] is not None for e in entries):
        for entry in entries:       # the mix wants weights on every entry or on none
            entry.setdefault("weight", 1.0)
            entry["weight"] = 1.0 if entry["weight"] is None else entry["weight"]
    else:
        for entry in entries:
            entry.pop("weight", None)
    mix = parse_mix_config({"datasets": entries, "frame_gaps": data.frame_gaps,
                            "samples_per_epoch": data.samples_per_epoch,
                            "size": [model.input_height, model.input_width]},
                           origin="recipe data")
    size = (model.input_height, model.input_width)
    val = [open_dataset("rosbag", p, offsets=(0,), size=size) for p in val_bags]
    for entry in data.val_datasets:
        entry = dict(entry)
        kind, path = entry.pop("kind"), entry.pop("path")
        val.append(open_dataset(kind, path, offsets=(0,), size=size,
                                **dict(entry.pop("options", {}))))
    return TrainingData(mix, MixedDataset(mix), val, data.workers, data.augment)
