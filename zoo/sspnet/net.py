"""SSP-Net (Luvizon, Tabia, Picard, Pattern Recognition 2023): sequential down/up pyramids with a
prediction block at every level, cuttable after any block at test time (spec section 3.3-3.4)."""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from zoo.sspnet.layers import (DownscalingUnit, GridName, PredictionBlock, ResidualUnit, SoftArgmaxPose,
                               UpscalingUnit)

StemName = Literal["paper", "tiny"]


class EntryFlow(nn.Sequential):
    """SSP-Net entry flow: conv7x7/2, Res(96), maxpool3/2, Res(192)x2, maxpool2, Res(C)x2 -> input/8 (spec 3.3)."""

    def __init__(self, out_channels: int = 288, in_chans: int = 3) -> None:
        super().__init__(
            nn.Conv2d(in_chans, 64, 7, stride=2, padding=3),
            ResidualUnit(64, 96), nn.MaxPool2d(3, stride=2, padding=1),
            ResidualUnit(96, 192), ResidualUnit(192, 192), nn.MaxPool2d(2, 2),
            ResidualUnit(192, out_channels), ResidualUnit(out_channels, out_channels),
        )


class TinyEntryFlow(nn.Sequential):
    """The spec's small-scale stem (section 10): conv5x5/2 + conv3x3/2 -> input/4 ("TinySSP")."""

    def __init__(self, out_channels: int = 32, in_chans: int = 3) -> None:
        super().__init__(
            nn.Conv2d(in_chans, out_channels, 5, stride=2, padding=2), nn.BatchNorm2d(out_channels, momentum=0.01),
            nn.ReLU(), nn.Conv2d(out_channels, out_channels, 3, stride=2, padding=1),
        )


class SSPNet(nn.Module):
    """SSP-Net: K pyramids alternating down/up over L levels, K*(L-1) prediction blocks, each giving a 3D pose.

    ``forward(x, cut)`` runs only the first ``cut`` blocks and returns their poses, each (B, J, 4) = [u, v, z, c]
    in normalised crop coordinates (u, v) and root-relative normalised depth z (spec section 3.1).
    """

    def __init__(
        self,
        num_joints: int = 17,
        num_pyramids: int = 8,
        num_levels: int = 4,
        growth: int = 96,
        kernel_size: int = 5,
        stem_channels: int = 288,
        stem: StemName = "paper",
        input_size: int = 256,
        in_chans: int = 3,
        grid: GridName = "centre",
        upsample: str = "nearest",
    ) -> None:
        super().__init__()
        if num_pyramids < 1 or num_levels < 2:
            raise ValueError(f"need num_pyramids >= 1 and num_levels >= 2, got K={num_pyramids}, L={num_levels}")
        div = 8 if stem == "paper" else 4
        if stem not in ("paper", "tiny"):
            raise ValueError(f"stem must be 'paper' or 'tiny', got {stem!r}")
        if input_size % (div * 2 ** (num_levels - 1)):
            raise ValueError(f"input_size {input_size} must be divisible by {div * 2 ** (num_levels - 1)} "
                             f"(stem /{div}, then {num_levels - 1} halvings)")
        self.num_joints, self.input_size, self.in_chans = num_joints, input_size, in_chans
        self.num_pyramids, self.num_levels = num_pyramids, num_levels
        self.stem = (EntryFlow if stem == "paper" else TinyEntryFlow)(stem_channels, in_chans)
        channels = [stem_channels + i * growth for i in range(num_levels)]
        self.levels: list[int] = []  # level reached by each prediction block, in execution order
        transitions, blocks = [], []
        level = 0
        for k in range(num_pyramids):
            step = 1 if k % 2 == 0 else -1  # odd pyramids (1st, 3rd, ...) go down, even ones go up
            for _ in range(num_levels - 1):
                nxt = level + step
                unit = DownscalingUnit if step > 0 else UpscalingUnit
                kwargs = {} if step > 0 else {"mode": upsample}
                transitions.append(unit(channels[level], channels[nxt], kernel_size, **kwargs))
                last = k == num_pyramids - 1 and len(blocks) == num_pyramids * (num_levels - 1) - 1
                blocks.append(PredictionBlock(channels[nxt], num_joints, kernel_size, reinject=not last))
                self.levels.append(nxt)
                level = nxt
        self.transitions = nn.ModuleList(transitions)
        self.blocks = nn.ModuleList(blocks)
        self.head = SoftArgmaxPose(grid)
        # block chosen on validation (1-based); saved with the weights so a loaded model predicts with it
        self.register_buffer("selected_block", torch.tensor(self.num_blocks))

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def forward(self, x: torch.Tensor, cut: int | None = None) -> list[torch.Tensor]:
        """Poses of prediction blocks 1..cut (default: all); nothing after the cut is computed."""
        cut = self.num_blocks if cut is None else int(cut)
        if not 1 <= cut <= self.num_blocks:
            raise ValueError(f"cut must be in 1..{self.num_blocks}, got {cut}")
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected images (B, {self.in_chans}, H, W) in [0, 1], got {tuple(x.shape)}")
        feat = self.stem(x * 2.0 - 1.0)  # [0, 1] -> [-1, 1] as in the paper's input normalisation
        lateral: dict[int, torch.Tensor] = {0: feat}
        poses = []
        for b in range(cut):
            feat = self.transitions[b](feat)
            level = self.levels[b]
            if level in lateral:
                feat = feat + lateral[level]
            feat, heat, depth = self.blocks[b](feat)
            lateral[level] = feat
            poses.append(self.head(heat, depth))
        return poses

    def predict(self, x: torch.Tensor, block: int | None = None) -> torch.Tensor:
        """Pose (B, J, 4) of one block (default: the block selected on validation), computing nothing after it."""
        return self.forward(x, cut=int(self.selected_block) if block is None else block)[-1]


def sspnet_paper(**kwargs) -> SSPNet:
    """The reference configuration of spec section 3.3: K=8, L=4, growth 96, k=5, 256x256 input, 24 blocks."""
    return SSPNet(**kwargs)


def sspnet_tiny(**kwargs) -> SSPNet:
    """The spec's small-scale "TinySSP" (section 10): 64x64 input, C=32, growth 16, L=3, K=4, 8 blocks."""
    cfg = dict(num_pyramids=4, num_levels=3, growth=16, stem_channels=32, stem="tiny", input_size=64)
    cfg.update(kwargs)
    return SSPNet(**cfg)
