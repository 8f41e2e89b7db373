"""The temporal state's flat names follow the encoder's strides and survive a round trip."""

from __future__ import annotations

import pytest
import torch

from unified_perception.train.model import build_unified_model
from unified_perception.train.temporal_state import TemporalState


@pytest.mark.parametrize("preset, images", [("paper", ["prev_image"]), ("light", [])])
def test_feature_names_come_from_the_encoder_strides_and_round_trip_in_order(
        preset: str, images: list[str]) -> None:
    """The previous image is state only where the motion decoder reads it (stride 1, ``paper``)."""
    model = build_unified_model("resnet18", 64, 96, seed=0, preset=preset)
    state = model.initial_state(2)
    named = state.named()
    feature_names = [n for n in named if n.startswith("feat_s")]
    assert feature_names == [f"feat_s{s}" for s in model.encoder.strides]
    assert list(named)[len(feature_names):] == images + ["latent_window", "latent_mask", "valid"]
    back = TemporalState.from_named(dict(reversed(list(named.items()))))   # order of keys lost
    assert back.strides == tuple(model.encoder.strides)
    assert all(a is b for a, b in zip(back.features, state.features))
    assert list(back.named()) == list(named)


def test_the_state_a_forward_pass_returns_names_the_same_tensors() -> None:
    model = build_unified_model("resnet18", 64, 96, seed=0, preset="light").eval()
    with torch.no_grad():
        _, state = model(torch.zeros(1, 64, 96, 3, dtype=torch.uint8))
    named = state.named()
    assert list(named) == list(model.initial_state(1).named())
    for stride, features in zip(model.encoder.strides, state.features):
        assert named[f"feat_s{stride}"].shape[-2:] == (64 // stride, 96 // stride)
