"""Alphazzle's policy and value networks (Paumard, Tabia, Picard, arXiv 2302.00384): a WRN-28-4 trunk + MLP
heads, or a small CNN encoder for CPU configs. ``AlphazzleNet`` holds P and V, with separate trunks by
default (the official code shares one, see spec section 10.1) and ``share_trunk=True`` to share it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class WideBasicBlock(nn.Module):
    """Pre-activation BN-ReLU-conv wide residual block (Zagoruyko & Komodakis), as Alphazzle's WRN trunk."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None if (cin == cout and stride == 1) else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(o)
        o = self.conv1(o)
        o = self.conv2(F.relu(self.bn2(o)))
        return o + skip


class WideResNetTrunk(nn.Module):
    """WRN-depth-k without global pooling (Alphazzle: WRN-28-4, strides 2-2-2), then MaxPool2d(2) + Flatten."""

    def __init__(self, depth: int = 28, widen: int = 4, in_channels: int = 3, strides: tuple = (2, 2, 2)) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)]
        for g in range(3):
            for i in range(n):
                layers.append(WideBasicBlock(widths[g] if i == 0 else widths[g + 1], widths[g + 1],
                                             strides[g] if i == 0 else 1))
        layers += [nn.BatchNorm2d(widths[3]), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.out_channels = widths[3]
        self.total_stride = 2 * strides[0] * strides[1] * strides[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def num_features(self, side: int) -> int:
        """Flattened size for a ``side`` x ``side`` input (128 -> 16,384, 40 -> 1,024)."""
        s = side
        for _ in range(3):
            s = (s + 1) // 2
        return self.out_channels * (s // 2) ** 2


class SmallEncoder(nn.Module):
    """The CPU encoder of the spec's faithful prototype: conv16-pool, conv32-pool, conv32, AdaptiveAvgPool(4)."""

    def __init__(self, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(*block(in_channels, width), nn.MaxPool2d(2, ceil_mode=True),
                                  *block(width, 2 * width), nn.MaxPool2d(2, ceil_mode=True),
                                  *block(2 * width, 2 * width), nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.out_features = 2 * width * 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def num_features(self, side: int) -> int:
        return self.out_features


def build_trunk(encoder: str, in_channels: int = 3) -> nn.Module:
    """``wrn28_4`` (paper) or ``small`` (CPU configs)."""
    if encoder == "wrn28_4":
        return WideResNetTrunk(28, 4, in_channels)
    if encoder == "small":
        return SmallEncoder(in_channels)
    raise ValueError(f"encoder must be 'wrn28_4' or 'small', got {encoder!r}")


def mlp_branch(in_features: int, width: int, depth: int) -> nn.Sequential:
    """Linear(in->width)+ReLU then ``depth`` x [Linear(width->width)+ReLU] (paper heads: width 512, depth 5)."""
    layers: list[nn.Module] = [nn.Linear(in_features, width), nn.ReLU(inplace=True)]
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class PolicyNet(nn.Module):
    """Alphazzle's P: (partial canvas, next fragment) -> logits over the grid positions; one trunk encodes both."""

    def __init__(self, trunk: nn.Module, canvas_side: int, frag_side: int, num_actions: int, head_width: int,
                 head_depth: int, upsample_fragment: bool) -> None:
        super().__init__()
        self.trunk, self.canvas_side, self.upsample_fragment = trunk, canvas_side, upsample_fragment
        f_side = canvas_side if upsample_fragment else frag_side
        self.canvas_branch = mlp_branch(trunk.num_features(canvas_side), head_width, head_depth)
        self.fragment_branch = mlp_branch(trunk.num_features(f_side), head_width, head_depth)
        self.head = nn.Sequential(nn.Linear(2 * head_width, head_width), nn.ReLU(inplace=True),
                                  nn.Linear(head_width, num_actions))

    def forward(self, canvas: torch.Tensor, fragment: torch.Tensor) -> torch.Tensor:
        if self.upsample_fragment:
            fragment = F.interpolate(fragment, size=(self.canvas_side, self.canvas_side), mode="nearest")
        c = self.canvas_branch(self.trunk(canvas))
        f = self.fragment_branch(self.trunk(fragment))
        return self.head(torch.cat([c, f], dim=1))


class ValueNet(nn.Module):
    """Alphazzle's V: partial or complete canvas -> one logit; sigmoid gives the estimated reward in [0, 1]."""

    def __init__(self, trunk: nn.Module, canvas_side: int, head_width: int, head_depth: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.branch = mlp_branch(trunk.num_features(canvas_side), head_width, head_depth)
        self.out = nn.Linear(head_width, 1)

    def forward(self, canvas: torch.Tensor) -> torch.Tensor:
        return self.out(self.branch(self.trunk(canvas))).squeeze(1)


class AlphazzleNet(nn.Module):
    """P and V of Alphazzle for one puzzle geometry (``grid`` x ``grid`` fragments of ``frag`` px, ``gap`` px)."""

    def __init__(self, grid: int = 3, frag: int = 40, gap: int = 4, in_channels: int = 3, encoder: str = "wrn28_4",
                 head_width: int | None = None, head_depth: int | None = None, share_trunk: bool = False) -> None:
        super().__init__()
        small = encoder == "small"
        head_width = head_width if head_width is not None else (256 if small else 512)
        head_depth = head_depth if head_depth is not None else (0 if small else 5)
        self.grid, self.frag, self.gap = grid, frag, gap
        self.canvas_side = grid * frag + (grid - 1) * gap
        self.num_actions = grid * grid
        p_trunk = build_trunk(encoder, in_channels)
        v_trunk = p_trunk if share_trunk else build_trunk(encoder, in_channels)
        self.policy = PolicyNet(p_trunk, self.canvas_side, frag, self.num_actions, head_width, head_depth,
                                upsample_fragment=small)
        self.value = ValueNet(v_trunk, self.canvas_side, head_width, head_depth)

    def forward(self, canvas: torch.Tensor, fragment: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(policy logits ``(B, A)``, value logits ``(B,)``)."""
        return self.policy(canvas, fragment), self.value(canvas)
