"""The small CNN of the MRS paper's faithful check (spec section 8; Bai et al. 2024, robust pruning).

conv(1->16)-conv(16->32)-pool-conv(32->64)-conv(64->64)-pool-fc(256->64)-fc(64->10), BN + ReLU;
inputs in [0, 1] with normalisation inside, so attack budgets are in pixel units.
"""
from __future__ import annotations

import torch
from torch import nn

from zoo.core.verbs import ClassifierVerbs


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class DigitsCNN(ClassifierVerbs, nn.Module):
    """Four conv-BN-ReLU layers, two max-pools, a hidden FC layer and a linear head (for 8x8 digits)."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, widths: list[int] | tuple[int, ...] = (16, 32, 64, 64),
                 hidden: int = 64, image_size: int = 8, mean: float = 0.3, std: float = 0.4) -> None:
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"widths needs 4 conv widths, got {list(widths)}")
        if image_size % 4:
            raise ValueError(f"image_size must be divisible by 4 (two 2x2 pools), got {image_size}")
        w1, w2, w3, w4 = widths
        self.num_classes = num_classes
        self.num_features = hidden
        self.register_buffer("mean", torch.tensor(float(mean)), persistent=False)
        self.register_buffer("std", torch.tensor(float(std)), persistent=False)
        self.features = nn.Sequential(
            *_conv(in_chans, w1), *_conv(w1, w2), nn.MaxPool2d(2), *_conv(w2, w3), *_conv(w3, w4), nn.MaxPool2d(2),
        )
        self.fc1 = nn.Linear(w4 * (image_size // 4) ** 2, hidden)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Linear(hidden, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.relu(self.fc1(x.flatten(1)))
        return x if pre_logits else self.head(x)
