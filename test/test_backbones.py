"""Backbones: the registry's interface, and ImageNet weights in torchvision layout load as is."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from unified_perception.train.backbones import BACKBONES, build_backbone, load_pretrained


def _torchvision_layout_checkpoint(name: str, path: Path, seed: int) -> dict[str, torch.Tensor]:
    """An ImageNet-style checkpoint as torchvision saves it: backbone tensors + the fc classifier."""
    torch.manual_seed(seed)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v + 3
             for k, v in build_backbone(name).state_dict().items()}
    fc_in = build_backbone(name).channels[-1]
    state["fc.weight"] = torch.randn(1000, fc_in)
    state["fc.bias"] = torch.randn(1000)
    torch.save(state, path)
    return state


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torchvision_layout_imagenet_state_dict_loads_with_no_missing_or_unexpected_key(
        name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}-imagenet.pth"
    saved = _torchvision_layout_checkpoint(name, path, seed=1)
    backbone = build_backbone(name)
    report = load_pretrained(backbone, path)
    assert report.skipped_classifier == ("fc.bias", "fc.weight")
    assert report.loaded == len(saved) - 2
    loaded = backbone.state_dict()
    assert set(loaded) == set(saved) - {"fc.weight", "fc.bias"}
    assert all(torch.equal(loaded[k], saved[k]) for k in loaded)


def test_torchvision_key_names_are_kept(tmp_path: Path) -> None:
    keys = set(build_backbone("resnet50").state_dict())
    for key in ("conv1.weight", "bn1.running_mean", "bn1.num_batches_tracked",
                "layer1.0.downsample.0.weight", "layer1.0.conv3.weight", "layer4.2.bn3.bias"):
        assert key in keys, key
    assert "layer1.0.downsample.0.weight" not in set(build_backbone("resnet18").state_dict())


def test_a_checkpoint_of_another_architecture_is_refused_with_the_keys_named(tmp_path: Path) -> None:
    path = tmp_path / "resnet34.pth"
    _torchvision_layout_checkpoint("resnet34", path, seed=2)
    with pytest.raises(ValueError, match="unexpected.*layer1.2"):
        load_pretrained(build_backbone("resnet18"), path)
    with pytest.raises(FileNotFoundError, match="local torchvision-layout"):
        load_pretrained(build_backbone("resnet18"), tmp_path / "nope.pth")


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_gives_four_maps_at_strides_4_to_32(name: str) -> None:
    backbone = build_backbone(name).eval()
    with torch.no_grad():
        maps = backbone(torch.zeros(1, 3, 64, 96))
    assert backbone.strides == (4, 8, 16, 32)
    assert [m.shape[1] for m in maps] == list(backbone.channels)
    assert [tuple(m.shape[2:]) for m in maps] == [(64 // s, 96 // s) for s in backbone.strides]


def test_unknown_backbone_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="resnet18"):
        build_backbone("vgg")


def test_export_command_turns_bad_imagenet_weights_into_one_message(tmp_path: Path) -> None:
    from unified_perception.cli import main as cli_main

    wrong = tmp_path / "resnet34.pth"
    _torchvision_layout_checkpoint("resnet34", wrong, seed=3)
    base = ["export", "--backbone", "resnet18", "--size", "64x64", "--preset", "light",
            "--out", str(tmp_path / "m.onnx")]
    for weights, expected in ((tmp_path / "nope.pth", "not found"), (wrong, "does not match")):
        with pytest.raises(SystemExit) as exit_info:
            cli_main([*base, "--imagenet-weights", str(weights)])
        assert isinstance(exit_info.value.code, str) and expected in exit_info.value.code
    assert not (tmp_path / "m.onnx").exists()
