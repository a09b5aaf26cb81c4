"""Training objectives of MRPF (Bai et al. 2024): natural CE, PGD-AT (Madry et al. 2018), TRADES (Zhang et al. 2019).

[PARTLY RECONSTRUCTED] The paper pairs pruning with adversarial fine-tuning, "notably TRADES"; settings
follow the spec: PGD-10, eps 8/255, step 2/255; TRADES starts at x + 0.001 N(0, 1) and maximises the KL.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from zoo.core.attacks import pgd

RobustLoss = Literal["natural", "pgd_at", "trades"]


def robust_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, kind: RobustLoss, eps: float, alpha: float,
                steps: int, beta: float = 6.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, logits)`` of one training batch; adversarial examples are made in eval mode, loss in train mode."""
    if kind == "natural":
        logits = model(x)
        return F.cross_entropy(logits, y), logits
    if kind == "pgd_at":
        x_adv = pgd(model, x, y, eps, alpha, steps, random_start=True)
        logits = model(x_adv)
        return F.cross_entropy(logits, y), logits
    if kind == "trades":
        with torch.no_grad():
            was = model.training
            model.eval()
            ref = model(x)
            model.train(was)
        x_adv = pgd(model, x, y, eps, alpha, steps, loss="kl", ref_logits=ref, start_noise=0.001)
        logits = model(x)
        logits_adv = model(x_adv)
        kl = F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits, dim=1), reduction="batchmean")
        return F.cross_entropy(logits, y) + beta * kl, logits
    raise ValueError(f"unknown training loss {kind!r}; expected 'natural', 'pgd_at' or 'trades'")
