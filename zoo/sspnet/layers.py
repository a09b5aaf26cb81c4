"""Building blocks of SSP-Net (Luvizon, Tabia, Picard, Pattern Recognition 2023): residual units,
down/up-scaling units, the soft-argmax pose head and the prediction block (spec section 3.2-3.3)."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

GridName = Literal["centre", "linspace01"]


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, momentum=0.01)  # Keras momentum 0.99 <-> torch 0.01 (spec section 9)


class SeparableConv2d(nn.Sequential):
    """Depthwise k x k then pointwise 1 x 1 convolution (SSP-Net's separable convolution)."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 5) -> None:
        super().__init__(
            nn.Conv2d(cin, cin, kernel_size, padding=kernel_size // 2, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1),
        )


class ResidualUnit(nn.Module):
    """SSP-Net normal residual unit: BN-ReLU, conv1x1 to C/2, BN-ReLU, conv kxk to C; 1x1 shortcut if needed."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3) -> None:
        super().__init__()
        mid = max(cout // 2, 1)
        self.body = nn.Sequential(
            _bn(cin), nn.ReLU(), nn.Conv2d(cin, mid, 1),
            _bn(mid), nn.ReLU(), nn.Conv2d(mid, cout, kernel_size, padding=kernel_size // 2),
        )
        self.shortcut = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.body(x)


class SepResidualUnit(nn.Module):
    """SSP-Net separable residual unit (SepRes): BN-ReLU, depthwise kxk, pointwise 1x1; 1x1 shortcut if needed."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.body = nn.Sequential(_bn(cin), nn.ReLU(), SeparableConv2d(cin, cout, kernel_size))
        self.shortcut = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.body(x)


class DownscalingUnit(nn.Sequential):
    """SSP-Net downscaling unit: maxpool 2x2 then SepRes to C + growth."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 5) -> None:
        super().__init__(nn.MaxPool2d(2, 2), SepResidualUnit(cin, cout, kernel_size))


class UpscalingUnit(nn.Module):
    """SSP-Net upscaling unit: nearest x2 upsampling (or the code's 2x2 transposed conv), then SepRes to C - growth."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 5, mode: str = "nearest") -> None:
        super().__init__()
        if mode not in ("nearest", "transposed"):
            raise ValueError(f"upsampling mode must be 'nearest' or 'transposed', got {mode!r}")
        self.up = nn.ConvTranspose2d(cin, cin, 2, stride=2) if mode == "transposed" else nn.Upsample(scale_factor=2)
        self.unit = SepResidualUnit(cin, cout, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unit(self.up(x))


def soft_grid(n: int, grid: GridName, device=None, dtype=None) -> torch.Tensor:
    """Coordinates of ``n`` cells in [0, 1]: pixel centres (x + 0.5)/n (resolution-invariant) or the code's linspace."""
    if grid == "centre":
        return (torch.arange(n, device=device, dtype=dtype) + 0.5) / n
    if grid == "linspace01":
        return torch.linspace(0.0, 1.0, n, device=device, dtype=dtype)
    raise ValueError(f"grid must be 'centre' or 'linspace01', got {grid!r}")


class SoftArgmaxPose(nn.Module):
    """SSP-Net regression head: spatial softmax, soft-argmax (u, v), heat-map-weighted sigmoid depth, confidence.

    Input: heat-map and depth-map logits (B, J, H, W); output (B, J, 4) = [u, v, z, c], all in [0, 1].
    """

    def __init__(self, grid: GridName = "centre") -> None:
        super().__init__()
        soft_grid(2, grid)  # validate early
        self.grid = grid

    def forward(self, heat: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        b, j, h, w = heat.shape
        prob = torch.softmax(heat.flatten(2).float(), dim=-1).view(b, j, h, w)
        gx = soft_grid(w, self.grid, heat.device, prob.dtype)
        gy = soft_grid(h, self.grid, heat.device, prob.dtype)
        u = (prob.sum(2) * gx).sum(-1)
        v = (prob.sum(3) * gy).sum(-1)
        z = (prob * torch.sigmoid(depth.float())).flatten(2).sum(-1)
        if min(h, w) >= 2:
            conf = (4 * F.avg_pool2d(prob, 2, stride=1)).flatten(2).amax(-1)
        else:
            conf = prob.flatten(2).amax(-1)
        return torch.stack([u, v, z, conf.clamp(0, 1)], dim=-1)


class PredictionBlock(nn.Module):
    """SSP-Net prediction block: SepRes, separable conv, heat/depth maps and their re-injection into the features."""

    def __init__(self, channels: int, num_joints: int, kernel_size: int = 5, reinject: bool = True) -> None:
        super().__init__()
        c, j = channels, num_joints
        self.unit = SepResidualUnit(c, c, kernel_size)
        self.pre = nn.Sequential(_bn(c), nn.ReLU(), SeparableConv2d(c, c, kernel_size))
        self.norm = _bn(c)
        self.heat = nn.Conv2d(c, j, 1)
        self.depth = nn.Conv2d(c, j, 1)
        self.reinject = reinject  # the network's last block feeds nothing: no re-injection layers (DDP-safe)
        if reinject:
            self.heat_aux = nn.Conv2d(c, j, 1)
            self.heat_remap = nn.Conv2d(2 * j, c, 1)
            self.depth_remap = nn.Conv2d(j, c, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (features for the next unit, heat-map logits, depth-map logits)."""
        x = self.unit(x)
        y = self.pre(x)
        z = F.relu(self.norm(y))
        h = self.heat(z)
        d = self.depth(z)
        if not self.reinject:
            return x + y, h, d
        h_remap = self.heat_remap(F.relu(torch.cat([h, self.heat_aux(z)], dim=1)))
        return x + y + h_remap + self.depth_remap(d), h, d
