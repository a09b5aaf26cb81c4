"""VGG-16 with BatchNorm for small images (Simonyan & Zisserman 2015; CIFAR variant, one linear head).

Shared by the zoo (robust pruning, Bai et al. 2024); inputs in [0, 1], normalised inside.
"""
from __future__ import annotations

import torch
from torch import nn

from zoo.core.resnet_cifar import CIFAR_MEAN, CIFAR_STD, Normalize
from zoo.core.verbs import ClassifierVerbs

VGG16_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG(ClassifierVerbs, nn.Module):
    """Conv3x3-BN-ReLU stacks with max-pooling, global average pooling and a linear classifier."""

    def __init__(self, cfg: list[int | str] | None = None, num_classes: int = 10, in_chans: int = 3,
                 width_mult: float = 1.0, mean: tuple[float, ...] | list[float] = CIFAR_MEAN,
                 std: tuple[float, ...] | list[float] = CIFAR_STD) -> None:
        super().__init__()
        cfg = list(cfg if cfg is not None else VGG16_CFG)
        self.num_classes = num_classes
        self.normalize = Normalize(mean, std)
        layers: list[nn.Module] = []
        c = in_chans
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            out = max(1, int(round(int(v) * width_mult)))
            layers += [nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            c = out
        self.features = nn.Sequential(*layers)
        self.num_features = c
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.normalize(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x).flatten(1)
        return x if pre_logits else self.head(x)


def vgg16_bn(num_classes: int = 10, in_chans: int = 3, width_mult: float = 1.0, **kwargs) -> VGG:
    """VGG-16-BN (13 convs, 14.7 M parameters at width 1 with a single linear head)."""
    return VGG(VGG16_CFG, num_classes=num_classes, in_chans=in_chans, width_mult=width_mult, **kwargs)
