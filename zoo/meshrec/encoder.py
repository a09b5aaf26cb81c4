"""Image encoders of the Vertex Generation Network (mesh reconstruction paper, IBISC; reconstructed, spec 3.2):
a small strided CNN for the toy and ResNet-50 stages 2-5 as Mesh R-CNN uses on ShapeNet. Both return the
multi-scale feature maps (for vert_align) and a pooled global image code."""
from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _norm_stats(in_chans: int, mean: Sequence[float] | None, std: Sequence[float] | None) -> tuple[list, list]:
    """ImageNet statistics (their channel average for grayscale input) unless given."""
    if mean is None:
        mean = IMAGENET_MEAN if in_chans == 3 else [sum(IMAGENET_MEAN) / 3] * in_chans
    if std is None:
        std = IMAGENET_STD if in_chans == 3 else [sum(IMAGENET_STD) / 3] * in_chans
    if len(mean) != in_chans or len(std) != in_chans:
        raise ValueError(f"mean/std need {in_chans} values, got {list(mean)} / {list(std)}")
    return list(mean), list(std)


class ImageEncoder(nn.Module):
    """Image -> (feature maps of every stage, global code); ImageNet normalisation happens here (inputs in [0, 1])."""

    def __init__(self, kind: Literal["conv", "resnet50", "resnet18"] = "conv", in_chans: int = 3,
                 widths: Sequence[int] = (16, 32, 64, 128), pretrained: bool = False,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        mean, std = _norm_stats(in_chans, mean, std)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.kind = kind
        if kind == "conv":  # spec section 10: four stride-2 convolutions, 16 -> 128 channels
            stages, c = [], in_chans
            for w in widths:
                stages.append(nn.Sequential(nn.Conv2d(c, w, 3, stride=2, padding=1), nn.BatchNorm2d(w),
                                            nn.ReLU(inplace=True)))
                c = w
            self.stem = nn.Identity()
            self.stages = nn.ModuleList(stages)
            self.channels = list(widths)
        elif kind in ("resnet50", "resnet18"):
            import torchvision

            weights = None
            if pretrained:  # read from the torchvision cache only: a missing file is named now, not a URL error later
                import os

                weights = torchvision.models.get_model_weights(kind).DEFAULT
                cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
                if not os.path.isfile(cached):
                    raise FileNotFoundError(
                        f"pretrained_backbone: the ImageNet weights of {kind} ({weights}) are not in the torchvision "
                        f"cache, expected {cached}. Nothing is downloaded here: copy the file from a machine with "
                        f"network (torchvision saves it there) or set pretrained_backbone: false.")
            net = getattr(torchvision.models, kind)(weights=weights)
            if in_chans != 3:
                net.conv1 = nn.Conv2d(in_chans, 64, 7, stride=2, padding=3, bias=False)
            self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
            self.stages = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
            self.channels = [256, 512, 1024, 2048] if kind == "resnet50" else [64, 128, 256, 512]
        else:
            raise ValueError(f"unknown encoder kind {kind!r}; expected 'conv', 'resnet18' or 'resnet50'")
        self.feat_dim = sum(self.channels)
        self.global_dim = self.channels[-1]

    def forward(self, img: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        if img.dim() != 4 or img.shape[1] != self.mean.shape[1]:
            raise ValueError(f"expected images (B, {self.mean.shape[1]}, H, W), got {tuple(img.shape)}")
        x = self.stem((img - self.mean) / self.std)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats, x.mean(dim=(2, 3))
