"""Backbone registry: multi-scale encoders behind one small interface.

A :class:`Backbone` maps a normalised image ``[N, 3, H, W] float32`` to four feature maps at strides
4, 8, 16 and 32 (``[N, channels[i], H / strides[i], W / strides[i]]``). The ResNets here are written
from the architecture description (He et al., 2016) with parameter names identical to torchvision's,
so an ImageNet state dict saved by torchvision loads as is from a LOCAL file
(:func:`load_pretrained`). Nothing downloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

STRIDES: tuple[int, int, int, int] = (4, 8, 16, 32)


class Backbone(nn.Module):
    """An encoder giving feature maps at :data:`STRIDES`; subclasses set ``channels``."""

    channels: tuple[int, int, int, int]
    strides: tuple[int, int, int, int] = STRIDES
    classifier_prefixes: tuple[str, ...] = ()
    """Parameter-name prefixes of an ImageNet checkpoint that are not part of the backbone."""

    def forward(self, image: Tensor) -> list[Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _downsample(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or projected) shortcut."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = _conv3x3(cin, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(width, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = _downsample(cin, cout, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, as torchvision's "v1.5"), 1x1 expand x4, with a shortcut."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(cin, cout, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(Backbone):
    """ResNet encoder (no classifier). Stem -> layer1 (stride 4) ... layer4 (stride 32)."""

    classifier_prefixes = ("fc.",)

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, ...]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = 64
        stages = []
        for index, (width, depth) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for b in range(depth):
                stride = 2 if (b == 0 and index > 0) else 1
                blocks.append(block(cin, width, stride))
                cin = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.channels = tuple(w * block.expansion for w in (64, 128, 256, 512))  # type: ignore[assignment]
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, image: Tensor) -> list[Tensor]:
        """``[N, 3, H, W]`` normalised image -> 4 maps ``[N, C_i, H / s_i, W / s_i]``, s = 4..32."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(image))))
        f4 = self.layer1(x)
        f8 = self.layer2(f4)
        f16 = self.layer3(f8)
        f32 = self.layer4(f16)
        return [f4, f8, f16, f32]


BACKBONES: dict[str, Callable[[], Backbone]] = {
    "resnet18": lambda: ResNet(BasicBlock, (2, 2, 2, 2)),
    "resnet34": lambda: ResNet(BasicBlock, (3, 4, 6, 3)),
    "resnet50": lambda: ResNet(Bottleneck, (3, 4, 6, 3)),
    "resnet101": lambda: ResNet(Bottleneck, (3, 4, 23, 3)),
}


def build_backbone(name: str) -> Backbone:
    """A randomly initialised backbone from the registry (:data:`BACKBONES`)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone '{name}'; choose one of: {', '.join(BACKBONES)}")
    return BACKBONES[name]()


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_pretrained` did: tensors loaded and checkpoint entries deliberately skipped."""

    path: Path
    loaded: int
    skipped_classifier: tuple[str, ...]

    def __str__(self) -> str:
        skipped = ", ".join(self.skipped_classifier) or "nothing"
        return f"loaded {self.loaded} tensors from {self.path}; skipped classifier: {skipped}"


def load_pretrained(backbone: Backbone, path: str | Path) -> LoadReport:
    """Load a LOCAL ImageNet state dict in torchvision layout into ``backbone``.

    The classifier (``fc.*`` for ResNets) is not part of a backbone: it is skipped and reported.
    Everything else must match exactly (no missing, no unexpected key, same shapes), else a
    ValueError names the offending keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ImageNet weights '{path}' not found; pass the path of a local "
                                f"torchvision-layout state dict (.pth)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"'{path}' does not hold a state dict (got {type(state).__name__})")
    skipped = tuple(sorted(k for k in state if k.startswith(backbone.classifier_prefixes)))
    kept = {k: v for k, v in state.items() if k not in skipped}
    try:
        result = backbone.load_state_dict(kept, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(f"'{path}' does not match the backbone: {err}") from None
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"'{path}' does not match the backbone: missing {result.missing_keys[:8]}"
                         f" ({len(result.missing_keys)}), unexpected {result.unexpected_keys[:8]}"
                         f" ({len(result.unexpected_keys)}). Is it a state dict of the same "
                         f"architecture in torchvision layout?")
    return LoadReport(path=path, loaded=len(kept), skipped_classifier=skipped)
