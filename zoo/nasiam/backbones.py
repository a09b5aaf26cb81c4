"""Backbones for NASiam (Heuillet et al., arXiv 2302.00059): torchvision ResNet-18/50 with the authors' CIFAR stem
conversion, and the small digits ConvNet of the spec's faithful check. Inputs in [0, 1], normalised inside.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from zoo.core.resnet_cifar import Normalize


def convert_cifar(net: nn.Module, in_chans: int = 3) -> nn.Module:
    """The CIFAR variant: 3x3 stride-1 stem conv and no max-pool (``convert_cifar`` in the authors' builder)."""
    net.conv1 = nn.Conv2d(in_chans, net.conv1.out_channels, 3, 1, 1, bias=False)
    net.maxpool = nn.Identity()
    return net


class DigitsConvNet(nn.Sequential):
    """The spec's 8x8 digits backbone: 3 conv-BN-ReLU (width, 2*width stride 2, 2*width) + global average pool."""

    def __init__(self, in_chans: int = 1, width: int = 32) -> None:
        def block(a: int, b: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(a, b, 3, stride, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]

        super().__init__(*block(in_chans, width, 1), *block(width, 2 * width, 2), *block(2 * width, 2 * width, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.num_features = 2 * width


class Backbone(nn.Module):
    """Normalisation + trunk, returning ``num_features``-d pooled features (the representation SSL learns)."""

    def __init__(self, name: str = "resnet18", in_chans: int = 3, cifar_stem: bool = True,
                 mean: Sequence[float] = (0.4914, 0.4822, 0.4465), std: Sequence[float] = (0.2470, 0.2435, 0.2616),
                 width: int = 32) -> None:
        super().__init__()
        if len(mean) != in_chans or len(std) != in_chans:
            raise ValueError(f"mean/std need {in_chans} values (in_chans), got {list(mean)} / {list(std)}")
        self.normalize = Normalize(list(mean), list(std))
        if name == "digits_convnet":
            self.trunk: nn.Module = DigitsConvNet(in_chans, width)
            self.num_features = self.trunk.num_features
        elif name in ("resnet18", "resnet50"):
            import torchvision

            net = getattr(torchvision.models, name)(zero_init_residual=True)
            if cifar_stem:
                convert_cifar(net, in_chans)
            elif in_chans != 3:
                net.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
            self.num_features = net.fc.in_features
            net.fc = nn.Identity()
            self.trunk = net
        else:
            raise ValueError(f"unknown backbone {name!r}; expected resnet18, resnet50 or digits_convnet")
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.normalize(x))
