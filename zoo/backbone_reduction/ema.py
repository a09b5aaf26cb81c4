"""Exponential moving average of parameters, as ``torch_ema.ExponentialMovingAverage`` 0.3 (RRR-Net's EMA)."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


class ParameterEMA:
    """Shadow copies of ``params``; ``update()`` after each optimizer step with ``decay`` (and, like torch_ema's
    default ``use_num_updates=True``, ``min(decay, (1 + n) / (10 + n))`` for the n-th update)."""

    def __init__(self, params: Iterable[nn.Parameter], decay: float, use_num_updates: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.params = list(params)
        self.decay, self.use_num_updates, self.num_updates = decay, use_num_updates, 0
        self.shadow = [p.detach().clone() for p in self.params]
        self._backup: list[torch.Tensor] | None = None

    @torch.no_grad()
    def update(self) -> None:
        self.num_updates += 1
        decay = self.decay
        if self.use_num_updates:
            decay = min(decay, (1 + self.num_updates) / (10 + self.num_updates))
        for s, p in zip(self.shadow, self.params):
            s.mul_(decay).add_(p.detach(), alpha=1.0 - decay)

    @torch.no_grad()
    def swap_in(self) -> None:
        """Put the averaged weights into the model, keeping the live ones for :meth:`restore`."""
        if self._backup is not None:
            return
        self._backup = [p.detach().clone() for p in self.params]
        for s, p in zip(self.shadow, self.params):
            p.copy_(s)

    @torch.no_grad()
    def restore(self) -> None:
        if self._backup is None:
            return
        for b, p in zip(self._backup, self.params):
            p.copy_(b)
        self._backup = None
