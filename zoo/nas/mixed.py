"""The continuous relaxation: ``MixedOp`` (DARTS softmax, FairDARTS/D-DARTS sigmoid, GDAS Gumbel) and
PC-DARTS partial channels.

A mixed edge computes sum_o w_o * o(x); the weights come from the architecture parameters alpha through
:func:`mixing_weights`.
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zoo.nas.ops import build_op

WeightFn = Literal["softmax", "sigmoid", "gumbel"]


def mixing_weights(alpha: torch.Tensor, weight_fn: WeightFn = "softmax", tau: float = 1.0,
                   hard: bool = True) -> torch.Tensor:
    """Per-edge op weights from alpha (rows = edges): softmax (DARTS), sigmoid (FairDARTS) or Gumbel (GDAS)."""
    if weight_fn == "softmax":
        return F.softmax(alpha, dim=-1)
    if weight_fn == "sigmoid":
        return torch.sigmoid(alpha)
    if weight_fn == "gumbel":
        return F.gumbel_softmax(alpha, tau=tau, hard=hard, dim=-1)
    raise ValueError(f"unknown weight_fn {weight_fn!r}; expected softmax, sigmoid or gumbel")


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle, used by PC-DARTS to mix sampled and bypassed channels."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class MixedOp(nn.Module):
    """One edge of the supernet: every candidate op, mixed by the given weights (Liu et al., 2019).

    ``partial_channels=K > 1`` is PC-DARTS (Xu et al., 2020): only C/K channels go through the ops, the
    rest bypass (max-pooled when strided), then channels are shuffled in K groups. With ``gumbel``
    weights (one-hot, straight-through) only the sampled op is computed, as in GDAS.
    """

    def __init__(self, c: int, stride: int, primitives: Sequence[str], weight_fn: WeightFn = "softmax",
                 partial_channels: int = 1, affine: bool = False) -> None:
        super().__init__()
        if partial_channels < 1 or c % partial_channels:
            raise ValueError(f"partial_channels={partial_channels} must divide the channel count {c}")
        self.primitives = tuple(primitives)
        self.weight_fn = weight_fn
        self.k = partial_channels
        self.stride = stride
        c_op = c // partial_channels
        self.ops = nn.ModuleList(build_op(p, c_op, stride, affine, search=True) for p in self.primitives)
        self.bypass_pool = nn.MaxPool2d(2, 2) if (partial_channels > 1 and stride == 2) else None

    def _mix(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if self.weight_fn == "gumbel":
            idx = int(weights.detach().argmax())
            # the unused weights are exactly 0 but still carry the straight-through gradient
            return sum((op(x) * w if i == idx else w for i, (w, op) in enumerate(zip(weights, self.ops))),
                       start=torch.zeros((), device=x.device))
        return sum(w * op(x) for w, op in zip(weights, self.ops))

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if weights.shape[-1] != len(self.ops):
            raise ValueError(f"MixedOp has {len(self.ops)} ops but got {weights.shape[-1]} weights")
        if self.k == 1:
            return self._mix(x, weights)
        c_op = x.shape[1] // self.k
        head, rest = x[:, :c_op], x[:, c_op:]
        out = self._mix(head, weights)
        if self.bypass_pool is not None:
            rest = self.bypass_pool(rest) if rest.shape[-1] % 2 == 0 else F.max_pool2d(rest, 2, 2, ceil_mode=True)
        return channel_shuffle(torch.cat([out, rest], dim=1), self.k)
