"""D-DARTS / FairDARTS losses as pure functions: the zero-one loss and the per-cell ablation term."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn


def zero_one_loss(alpha: torch.Tensor) -> torch.Tensor:
    """FairDARTS zero-one loss -mean((sigmoid(alpha) - 0.5)^2): pushes every op weight towards 0 or 1."""
    return -((torch.sigmoid(alpha) - 0.5) ** 2).mean()


def stacked_zero_one_loss(alphas: Sequence[torch.Tensor]) -> torch.Tensor:
    """The reference weight-step term ``-F.mse_loss(sigmoid(stacked alphas), 0.5)``: one mean over every cell's
    entries (the mean of the per-cell zero-one losses when the cells' alphas have one shape, not their sum)."""
    return zero_one_loss(torch.cat([a.flatten() for a in alphas]))


@torch.no_grad()
def marginal_contributions(net: nn.Module, x: torch.Tensor, y: torch.Tensor,
                           criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """mc_c = CE(full net) - CE(net with cell c deactivated), one per cell (D-DARTS ``ConvAblationLoss``, spec section 3).

    A deactivated cell mixes its ops with fresh U(0,1) weights. Computed without gradient, as in the
    reference code where the ablation term is a detached float (it changes the logged loss only).
    """
    full = criterion(net(x), y)
    out = []
    for c in range(len(net.cells)):
        net.deactivated = c
        try:
            out.append(full - criterion(net(x), y))
        finally:
            net.deactivated = None
    return torch.stack(out)


def ablation_loss(mc: torch.Tensor) -> torch.Tensor:
    """L_abl(c) = -(mc_c - mean mc) / mean mc (0 where the mean is 0), one value per cell."""
    mean = mc.mean()
    if float(mean) == 0.0:
        return torch.zeros_like(mc)
    return -(mc - mean) / mean
