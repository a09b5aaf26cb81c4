"""Candidate operations of the DARTS search space (Liu et al., ICLR 2019) and the D-DARTS/DARTOpti extras.

One registry ``OPS[name](C, stride, affine) -> nn.Module`` maps C channels to C channels; ``stride=2``
halves the resolution (used on the edges leaving a reduction cell's inputs).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

#: The 8 DARTS candidates, in the order of the reference code (softmax mixed op).
DARTS_PRIMITIVES: tuple[str, ...] = (
    "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
)
#: FairDARTS / D-DARTS candidates: the DARTS set without ``none`` (sigmoid mixed op).
FAIR_PRIMITIVES: tuple[str, ...] = DARTS_PRIMITIVES[1:]
#: DARTOpti (later D-DARTS versions) candidates, 12 ops.
DARTOPTI_PRIMITIVES: tuple[str, ...] = (
    "conv_3x1_1x3", "conv_7x1_1x7", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "simple_conv_1x1",
    "simple_conv_3x3", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "bottleneck_1x3x1",
)
#: Operations without parameters (their cells are the "parameter-free" baseline of the faithful checks).
PARAMETER_FREE: frozenset[str] = frozenset({"none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"})


class ReLUConvBN(nn.Sequential):
    """ReLU -> conv (no bias) -> BN, the DARTS building block and cell-input preprocessing."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0, affine: bool = True) -> None:
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine))


class DilConv(nn.Sequential):
    """DARTS dilated separable conv: ReLU, dilated depthwise k x k, pointwise 1x1, BN."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, dilation: int,
                 affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, stride=stride, padding=padding, dilation=dilation,
                      groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """DARTS separable conv: two (ReLU, depthwise k x k, pointwise, BN) blocks, stride in the first."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True) -> None:
        super().__init__(
            DilConv(c_in, c_in, kernel_size, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel_size, 1, padding, 1, affine),
        )


class RectConv(nn.Sequential):
    """Factorised rectangular conv (1 x k then k x 1) with BN: DARTOpti's ``conv_3x1_1x3``/``conv_7x1_1x7``."""

    def __init__(self, c: int, k: int, stride: int, affine: bool = True) -> None:
        p = k // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, (1, k), stride=(1, stride), padding=(0, p), bias=False),
            nn.Conv2d(c, c, (k, 1), stride=(stride, 1), padding=(p, 0), bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )


class Bottleneck(nn.Sequential):
    """DARTOpti's ``bottleneck_1x3x1``: 1x1, 3x3 (stride), 1x1 expand to 4C, ReLU, 1x1 back to C, with BNs."""

    def __init__(self, c: int, stride: int, affine: bool = True, expansion: int = 4) -> None:
        e = c * expansion
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c, affine=affine),
            nn.Conv2d(c, c, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c, affine=affine),
            nn.Conv2d(c, e, 1, bias=False), nn.BatchNorm2d(e, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(e, c, 1, bias=False), nn.BatchNorm2d(c, affine=affine),
        )


class Zero(nn.Module):
    """The ``none`` op: a zero tensor of the output shape (subsampled by the stride)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Stride-2 reduction by two 1x1 convs of C/2 on x and on x shifted by one pixel, concat, BN (DARTS).

    Odd sizes are padded by one pixel on the bottom/right so both halves agree (the reference fails there).
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def _pool(kind: str, c: int, stride: int, affine: bool, search_bn: bool) -> nn.Module:
    pool = (nn.MaxPool2d(3, stride=stride, padding=1) if kind == "max"
            else nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False))
    # In the search supernet DARTS follows each pool by BN(affine=False) (spec section 4).
    return nn.Sequential(pool, nn.BatchNorm2d(c, affine=False)) if search_bn else pool


OpFactory = Callable[[int, int, bool], nn.Module]

OPS: dict[str, OpFactory] = {
    "none": lambda c, s, a: Zero(s),
    "max_pool_3x3": lambda c, s, a: _pool("max", c, s, a, False),
    "avg_pool_3x3": lambda c, s, a: _pool("avg", c, s, a, False),
    "skip_connect": lambda c, s, a: nn.Identity() if s == 1 else FactorizedReduce(c, c, affine=a),
    "sep_conv_3x3": lambda c, s, a: SepConv(c, c, 3, s, 1, affine=a),
    "sep_conv_5x5": lambda c, s, a: SepConv(c, c, 5, s, 2, affine=a),
    "sep_conv_7x7": lambda c, s, a: SepConv(c, c, 7, s, 3, affine=a),
    "dil_conv_3x3": lambda c, s, a: DilConv(c, c, 3, s, 2, 2, affine=a),
    "dil_conv_5x5": lambda c, s, a: DilConv(c, c, 5, s, 4, 2, affine=a),
    "simple_conv_1x1": lambda c, s, a: ReLUConvBN(c, c, 1, s, 0, affine=a),
    "simple_conv_3x3": lambda c, s, a: ReLUConvBN(c, c, 3, s, 1, affine=a),
    "simple_conv_5x5": lambda c, s, a: ReLUConvBN(c, c, 5, s, 2, affine=a),
    "conv_3x1_1x3": lambda c, s, a: RectConv(c, 3, s, affine=a),
    "conv_7x1_1x7": lambda c, s, a: RectConv(c, 7, s, affine=a),
    "bottleneck_1x3x1": lambda c, s, a: Bottleneck(c, s, affine=a),
}


def register_op(name: str, factory: OpFactory) -> None:
    """Add an operation ``factory(C, stride, affine)`` to the registry (refuses to overwrite)."""
    if name in OPS:
        raise ValueError(f"operation {name!r} is already registered")
    OPS[name] = factory


def build_op(name: str, c: int, stride: int, affine: bool, search: bool = False) -> nn.Module:
    """Instantiate op ``name``; ``search=True`` adds the supernet's BN(affine=False) after pools."""
    if name not in OPS:
        raise ValueError(f"unknown operation {name!r}; registered: {sorted(OPS)}")
    if search and name in ("max_pool_3x3", "avg_pool_3x3"):
        return _pool(name[:3], c, stride, affine, True)
    return OPS[name](c, stride, affine)


def is_identity(op: nn.Module) -> bool:
    """True for the stride-1 skip connection (DARTS never drop-paths it)."""
    return isinstance(op, nn.Identity)
