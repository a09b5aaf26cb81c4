"""A small CNN for 8x8 (or larger) digit images: the quickstart's network."""
from __future__ import annotations

import torch
from torch import nn

from zoo.core.verbs import ClassifierVerbs


class SmallCNN(ClassifierVerbs, nn.Module):
    """Two conv-BN-ReLU stages, global average pooling and a linear head; inputs in [0, 1]."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, width: int = 32, drop_rate: float = 0.1,
                 mean: float = 0.5, std: float = 0.5) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = 2 * width
        self.register_buffer("mean", torch.tensor(mean), persistent=False)
        self.register_buffer("std", torch.tensor(std), persistent=False)
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.pool(x).flatten(1))
        return x if pre_logits else self.head(x)
