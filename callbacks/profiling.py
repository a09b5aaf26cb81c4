"""Log a model's parameter count and MACs (per sample), the MACs measured on what the network really receives.

The input of the first training step is captured with forward pre-hooks, after the datamodule's
``on_after_batch_transfer`` (crops, views) and the module's own augmentation, with every argument of a multi-input
forward. A count that cannot be made is reported with the module's name, never silently skipped.
"""
from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from zoo.core.profiling import count_params


def _first_tensor(batch) -> torch.Tensor | None:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, dict):
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)):
        for item in batch:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _macs_of_call(module: nn.Module, args: tuple, kwargs: dict | None = None) -> int:
    """MACs of ``module(*args, **kwargs)`` in eval mode without gradients (attention's fused path switched off)."""
    from torch.utils.flop_counter import FlopCounterMode

    from zoo.core import profiling

    was_training = module.training
    fastpath = torch.backends.mha.get_fastpath_enabled()
    module.eval()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        extra = getattr(profiling, "_EXTRA_FLOPS", None)
        with torch.no_grad(), FlopCounterMode(display=False, **({"custom_mapping": extra} if extra else {})) as c:
            module(*args, **(kwargs or {}))
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        module.train(was_training)
    return c.get_total_flops() // 2


def _one_sample(args: tuple, kwargs: dict) -> tuple[tuple, dict, int]:
    """The first sample of every tensor argument whose leading dimension is the batch's; returns the batch size."""
    first = _first_tensor(list(args) + list(kwargs.values()))
    if first is None or first.dim() == 0:
        return args, kwargs, 1
    n = first.shape[0]
    cut = lambda v: v[:1] if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == n else v
    return tuple(cut(a) for a in args), {k: cut(v) for k, v in kwargs.items()}, n


def _per_sample_macs(module: nn.Module, args: tuple, kwargs: dict) -> int:
    one_args, one_kwargs, n = _one_sample(args, kwargs)
    try:
        return _macs_of_call(module, one_args, one_kwargs)
    except Exception:  # a forward that needs its whole batch (batch statistics, pairs): count it and divide
        if n == 1:
            raise
        return _macs_of_call(module, args, kwargs) // n


class ModelProfile(Callback):
    """Adds ``model/params`` (at train start) and ``model/macs`` (after the first training step) to the loggers.

    MACs are those of the LightningModule's ``forward`` on one sample of the arguments it received in the first
    training step. When the step calls sub-networks instead (``self.net.policy(canvas, fragment)``, or
    ``forward_with_aux``), the module's ``forward`` is called on the arguments of the outermost sub-module with
    parameters that ran, first in call order; then ``example_input_array``; then the first tensor of the batch.
    """

    def __init__(self) -> None:
        self._handles: list[Any] = []
        self._calls: list[tuple[int, int, nn.Module, tuple, dict]] = []
        self._batch: Any = None
        self._done = False

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, {"model/params": count_params(pl_module)})

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self._done or self._handles:
            return
        self._batch, self._calls = batch, []
        depth = {id(m): (0 if m is pl_module else name.count(".") + 1) for name, m in pl_module.named_modules()}
        seen: set[int] = set()

        def record(module: nn.Module, args: tuple, kwargs: dict) -> None:
            if id(module) not in seen:
                seen.add(id(module))
                self._calls.append((depth[id(module)], len(self._calls), module, args, dict(kwargs)))

        for m in {id(m): m for m in pl_module.modules()}.values():  # augmentation modules own no parameters
            if m is pl_module or next(m.parameters(), None) is not None:
                self._handles.append(m.register_forward_pre_hook(record, with_kwargs=True))

    def _remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self._done or not self._handles:
            return
        self._remove_hooks()
        self._done = True
        macs, reasons = self._count(pl_module)
        self._calls, self._batch = [], None
        if macs is None:
            rank_zero_warn(f"model/macs not logged for {type(pl_module).__name__}: " + "; ".join(reasons))
            return
        self._log(trainer, {"model/macs": macs})

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._remove_hooks()

    def _count(self, pl_module: LightningModule) -> tuple[int | None, list[str]]:
        reasons: list[str] = []
        attempts: list[tuple[str, tuple, dict]] = []
        for depth, _, module, args, kwargs in sorted(self._calls, key=lambda c: (c[0], c[1])):
            where = "forward" if module is pl_module else f"forward on the input of {type(module).__name__}"
            attempts.append((where, args, kwargs))
        if not self._calls:
            reasons.append("no module ran a forward in the first training step")
        example = getattr(pl_module, "example_input_array", None)
        if example is not None:
            example = example if isinstance(example, tuple) else (example,)
            attempts.append(("example_input_array", tuple(e.to(pl_module.device) if torch.is_tensor(e) else e
                                                          for e in example), {}))
        x = _first_tensor(self._batch)
        if x is not None:
            attempts.append(("forward on the first tensor of the batch", (x,), {}))
        tried: set[tuple] = set()
        for where, args, kwargs in attempts:
            key = tuple((tuple(a.shape), a.dtype) if torch.is_tensor(a) else type(a) for a in args)
            if key in tried and not kwargs:
                continue
            tried.add(key)
            try:
                return _per_sample_macs(pl_module, args, kwargs), reasons
            except Exception as err:  # profiling must never stop training
                shapes = [tuple(a.shape) if torch.is_tensor(a) else type(a).__name__ for a in args]
                reasons.append(f"{where} {shapes}: {type(err).__name__}: {str(err)[:200]}")
        return None, reasons

    @staticmethod
    def _log(trainer: Trainer, summary: dict) -> None:
        for logger in trainer.loggers:  # loggers write on rank zero only; values are equal on every rank
            logger.log_hyperparams(summary)
            logger.log_metrics({k: float(v) for k, v in summary.items()}, step=trainer.global_step)
