"""Log a model's parameter count and MACs (per sample) once training starts."""
from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn

from zoo.core.profiling import count_macs, count_params


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


def _macs_of_call(module: LightningModule, example) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    was_training = module.training
    module.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            if isinstance(example, (tuple, list)):
                module(*example)
            elif isinstance(example, dict):
                module(**example)
            else:
                module(example)
    finally:
        module.train(was_training)
    return counter.get_total_flops() // 2


class ModelProfile(Callback):
    """Adds ``model/params`` and ``model/macs`` to the loggers: MACs of ``example_input_array`` when the
    module sets one (multi-input forwards), else of one sample of the first training batch."""

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        summary = {"model/params": count_params(pl_module)}
        try:
            example = pl_module.example_input_array  # Lightning's convention; tuples for multi-input forwards
            if example is not None:
                example = trainer.strategy.batch_to_device(example, pl_module.device)
                with torch.no_grad():
                    summary["model/macs"] = _macs_of_call(pl_module, example)
            else:
                x = _first_tensor(next(iter(trainer.train_dataloader)))
                if x is not None:
                    summary["model/macs"] = count_macs(pl_module, x[:1].to(pl_module.device))
        except Exception as err:  # profiling must never stop training
            rank_zero_warn(f"MACs not counted: {type(err).__name__}: {err}")
        for logger in trainer.loggers:  # loggers write on rank zero only; values are equal on every rank
            logger.log_hyperparams(summary)
            logger.log_metrics({k: float(v) for k, v in summary.items()}, step=trainer.global_step)
