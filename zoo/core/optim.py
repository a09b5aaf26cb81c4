"""Optimisers and learning-rate schedules built from plain, typed config values."""
from __future__ import annotations

import math
from typing import Any, Iterable

import torch


def build_optimizer(
    params: Iterable, name: str, *, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
    nesterov: bool = False,
) -> torch.optim.Optimizer:
    """Return the optimiser called ``name`` (sgd, adam, adamw, rmsprop)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; expected one of sgd, adam, adamw, rmsprop")


def planned_epochs(module: Any, default: int) -> int:
    """The attached Trainer's ``max_epochs`` (the span of an epoch-based schedule), ``default`` when there is no
    Trainer or no epoch limit."""
    trainer = getattr(module, "_trainer", None)
    if trainer is None or not trainer.max_epochs or trainer.max_epochs < 1:
        return default
    return int(trainer.max_epochs)


def step_factor(epoch: int, milestones: list[int], gamma: float = 0.1) -> float:
    """Learning-rate factor of a step decay: ``gamma`` per milestone reached (``epoch >= m``), as ``MultiStepLR`` and
    the MoCo code's stepwise ``adjust_learning_rate``."""
    return gamma ** sum(epoch >= m for m in milestones)


def build_scheduler(
    optimizer: torch.optim.Optimizer, name: str, *, max_epochs: int, warmup_epochs: int = 0,
    step_size: int = 30, milestones: list[int] | None = None, gamma: float = 0.1,
    steps_per_epoch: int = 1,
) -> dict | None:
    """Return a Lightning scheduler dict for ``name`` (none, cosine, step, multistep, onecycle)."""
    if name == "none":
        return None
    if name == "onecycle":
        total = max(1, max_epochs * steps_per_epoch)
        max_lr = [g["lr"] for g in optimizer.param_groups]
        sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total)
        return {"scheduler": sched, "interval": "step"}
    if name == "cosine":
        def factor(epoch: int) -> float:
            if epoch < warmup_epochs:
                return (epoch + 1) / (warmup_epochs + 1)
            span = max(1, max_epochs - warmup_epochs)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (epoch - warmup_epochs) / span)))
        sched = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    elif name == "step":
        sched = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
    elif name == "multistep":
        if not milestones:
            raise ValueError("scheduler 'multistep' needs milestones, e.g. [150, 225]")
        sched = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=gamma)
    else:
        raise ValueError(f"unknown scheduler {name!r}; expected none, cosine, step, multistep, onecycle")
    return {"scheduler": sched, "interval": "epoch"}
