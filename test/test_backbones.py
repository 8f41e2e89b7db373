"""Backbones: the registry's interface, and ImageNet weights in torchvision layout load as is."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from unified_perception.train.backbones import BACKBONES, build_backbone, load_pretrained


TORCHVISION_RESNETS: dict[str, tuple[bool, tuple[int, int, int, int]]] = {
    "resnet18": (False, (2, 2, 2, 2)), "resnet34": (False, (3, 4, 6, 3)),
    "resnet50": (True, (3, 4, 6, 3)), "resnet101": (True, (3, 4, 23, 3)),
}
"""torchvision's ResNet definitions (He et al., 2016): bottleneck blocks or not, blocks per stage."""


def _batch_norm(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{p}": (channels,) for p in ("weight", "bias", "running_mean", "running_var")} \
        | {f"{prefix}.num_batches_tracked": ()}


def torchvision_resnet_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Every key and shape of torchvision's ``resnetNN().state_dict()``, written out from the
    architecture as torchvision defines it (stem conv1/bn1, layer1..4 of BasicBlock or Bottleneck
    with expansion 4 and the stride on conv2, downsample.0/1 where the shape changes, fc), NOT taken
    from this package's ResNet."""
    bottleneck, blocks = TORCHVISION_RESNETS[name]
    expansion = 4 if bottleneck else 1
    shapes = {"conv1.weight": (64, 3, 7, 7), **_batch_norm("bn1", 64)}
    inplanes = 64
    for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
        for block in range(count):
            p = f"layer{stage}.{block}"
            stride = 2 if stage > 1 and block == 0 else 1
            if bottleneck:
                convs = [(planes, inplanes, 1), (planes, planes, 3), (planes * 4, planes, 1)]
            else:
                convs = [(planes, inplanes, 3), (planes, planes, 3)]
            for i, (out_ch, in_ch, k) in enumerate(convs, start=1):
                shapes[f"{p}.conv{i}.weight"] = (out_ch, in_ch, k, k)
                shapes |= _batch_norm(f"{p}.bn{i}", out_ch)
            if block == 0 and (stride != 1 or inplanes != planes * expansion):
                shapes[f"{p}.downsample.0.weight"] = (planes * expansion, inplanes, 1, 1)
                shapes |= _batch_norm(f"{p}.downsample.1", planes * expansion)
            inplanes = planes * expansion
    shapes["fc.weight"], shapes["fc.bias"] = (1000, 512 * expansion), (1000,)
    return shapes


def _torchvision_layout_checkpoint(name: str, path: Path, seed: int) -> dict[str, torch.Tensor]:
    """An ImageNet-style checkpoint as torchvision saves it (backbone tensors + the fc classifier),
    with random values under torchvision's own key names and shapes."""
    generator = torch.Generator().manual_seed(seed)
    state = {key: (torch.tensor(seed + 3) if key.endswith("num_batches_tracked")
                   else torch.randn(shape, generator=generator))
             for key, shape in torchvision_resnet_shapes(name).items()}
    torch.save(state, path)
    return state


@pytest.mark.parametrize("name", sorted(TORCHVISION_RESNETS))
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
