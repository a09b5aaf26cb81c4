"""MRS ratio policy for :class:`callbacks.pruning.PruningSchedule` (Bai et al. 2024, robust pruning).

Builds the adversarial calibration set from the dense model, scores every prunable layer with Module
Robust Sensitivity (cached on disk) and allocates bounded inverse-MRS ratios to the budget.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn

from zoo.core.structured_pruning import ParamCounter, RatioPolicy
from zoo.robust_pruning.allocation import mrs_ratios
from zoo.robust_pruning.mrs import adversarial_calibration_set, cached_mrs


class MRSAllocation(RatioPolicy):
    """Per-layer ratios from MRS; defaults are the spec's ([RECONSTRUCTED]: RiFT-like MRS, bounded rule)."""

    def __init__(
        self,
        num_samples: int = 2000,
        attack_eps: float = 8 / 255,
        attack_alpha: float = 2 / 255,
        attack_steps: int = 10,
        radius: float = 0.1,
        ascent_steps: int = 10,
        ascent_lr: float = 1.0,
        batch_size: int = 512,
        project_every: Literal["epoch", "step"] = "epoch",
        measure: Literal["loss", "acc_drop"] = "loss",
        ascent: Literal["sgd", "normalized"] = "sgd",
        alpha: float = 1.0,
        delta: float = 0.3,
        p_max: float = 0.8,
        cache_dir: str | None = "auto",
        seed: int = 0,
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"MRS needs a calibration set: num_samples must be >= 1, got {num_samples}")
        self.num_samples = num_samples
        self.attack = dict(eps=attack_eps, alpha=attack_alpha, steps=attack_steps, seed=seed)
        self.mrs_kwargs = dict(radius=radius, ascent_steps=ascent_steps, lr=ascent_lr, batch_size=batch_size,
                               project_every=project_every, measure=measure, ascent=ascent)
        self.alloc = dict(alpha=alpha, delta=delta, p_max=p_max)
        self.cache_dir = cache_dir  # "auto": <root_dir>/mrs_cache, root_dir set by the pruning callback
        self.root_dir: str | None = None
        self.batch_size = batch_size
        self.scores: dict[str, float] | None = None

    def ratios(self, net: nn.Module, counter: ParamCounter, sparsity: float, budget: str = "params",
               min_channels: int = 1, data: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, float]:
        if data is None:
            raise ValueError("MRSAllocation needs calibration data (images, labels)")
        x, y = data
        x_adv = adversarial_calibration_set(net, x, y, batch_size=self.batch_size, **self.attack)
        layers = [m for u in counter.units for m in u.members]
        cache = self.cache_dir
        if cache == "auto":
            cache = str(Path(self.root_dir) / "mrs_cache") if self.root_dir else None
        self.scores = cached_mrs(net, x_adv, y, cache, layers=layers, **self.mrs_kwargs)
        return mrs_ratios(counter, self.scores, sparsity, budget, min_channels=min_channels, **self.alloc)
