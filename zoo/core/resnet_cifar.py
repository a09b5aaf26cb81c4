"""ResNet-18 in its CIFAR variant (He et al. 2016; 3x3 stem, no max-pool), shared by the zoo.

Used by robust pruning (MRS, Bai et al. 2024) and NASiam; inputs in [0, 1], normalised inside.
"""
from __future__ import annotations

import torch
from torch import nn

from zoo.core.verbs import ClassifierVerbs

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` so attacks and data stay in pixel units [0, 1]."""

    def __init__(self, mean: tuple[float, ...] | list[float], std: tuple[float, ...] | list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean)).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std)).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut (He et al. 2016)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNetCIFAR(ClassifierVerbs, nn.Module):
    """ResNet for 32x32 (or 64x64) images: 3x3 stem, four stages of BasicBlocks, GAP and a linear head."""

    def __init__(self, layers: tuple[int, ...] | list[int] = (2, 2, 2, 2), num_classes: int = 10, in_chans: int = 3,
                 width: int = 64, mean: tuple[float, ...] | list[float] = CIFAR_MEAN,
                 std: tuple[float, ...] | list[float] = CIFAR_STD) -> None:
        super().__init__()
        if len(mean) != in_chans or len(std) != in_chans:
            raise ValueError(f"mean/std need {in_chans} values, got {len(mean)}/{len(std)}")
        self.num_classes = num_classes
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(in_chans, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        planes, in_planes, stages = width, width, []
        for i, n in enumerate(layers):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
            planes *= 2
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = in_planes
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(in_planes, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(self.normalize(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x).flatten(1)
        return x if pre_logits else self.head(x)


def resnet18_cifar(num_classes: int = 10, in_chans: int = 3, width: int = 64, **kwargs) -> ResNetCIFAR:
    """ResNet-18 (CIFAR variant): [2, 2, 2, 2] BasicBlocks, 11.2 M parameters at width 64."""
    return ResNetCIFAR((2, 2, 2, 2), num_classes=num_classes, in_chans=in_chans, width=width, **kwargs)
