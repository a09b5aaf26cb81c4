"""Shared LightningModule for image classifiers: metrics, label smoothing, optimiser and schedule.

Papers subclass :class:`ClassifierModule`, build their pure ``nn.Module`` and pass it as ``net``;
everything a classifier logs (``train/loss``, ``val/acc``, ``test/acc_top5`` ...) is defined once here.
"""
from __future__ import annotations

from typing import Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

OptimizerName = Literal["sgd", "adam", "adamw", "rmsprop"]
SchedulerName = Literal["none", "cosine", "step", "multistep", "onecycle"]


class ClassifierModule(pl.LightningModule):
    """Train and evaluate ``net`` (a pure ``nn.Module`` mapping images to logits).

    Subclasses call ``super().__init__(net=..., **common)``; hyperparameters of the whole
    ``__init__`` chain are saved (``net`` excluded), so ``load_from_checkpoint`` rebuilds them.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: OptimizerName = "sgd",
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        nesterov: bool = False,
        scheduler: SchedulerName = "cosine",
        warmup_epochs: int = 0,
        step_size: int = 30,
        milestones: list[int] | None = None,
        gamma: float = 0.1,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.save_hyperparameters(ignore=["net"])
        # kept as attributes too: under LightningCLI, hparams hold only the subclass's config keys
        self.optim_cfg = dict(
            optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov,
            scheduler=scheduler, warmup_epochs=warmup_epochs, step_size=step_size, milestones=milestones,
            gamma=gamma,
        )
        self.label_smoothing = label_smoothing
        self.net = net
        top5 = min(5, num_classes)
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_acc": MulticlassAccuracy(num_classes, top_k=1, average="micro")
                for stage in ("train", "val", "test")
            }
            | {
                f"{stage}_acc_top5": MulticlassAccuracy(num_classes, top_k=top5, average="micro")
                for stage in ("val", "test")
            }
        )

    # ---- uniform verbs, forwarded to the network ---------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)

    # ---- steps -------------------------------------------------------------------------
    def batch_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a batch (override for test-time multi-crop and similar)."""
        return self(x)

    def on_batch_logits(self, stage: str, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Hook for extra per-batch metrics of a subclass; the base logs loss, top-1 and top-5."""

    def _shared_step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch[0], batch[1]
        logits = self.batch_logits(x)
        loss = self.loss(logits, y)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, sync_dist=True)
        # update(), not forward(): accuracy is logged per epoch only, and forward() also computes a per-batch value
        # (a second metric state, reduced and merged every step), a third of the metric's cost per training step
        self.metrics[f"{stage}_acc"].update(logits, y)
        self.log(f"{stage}/acc", self.metrics[f"{stage}_acc"], on_step=False, on_epoch=True, prog_bar=True)
        if stage != "train":
            self.metrics[f"{stage}_acc_top5"].update(logits, y)
            self.log(f"{stage}/acc_top5", self.metrics[f"{stage}_acc_top5"], on_step=False, on_epoch=True)
        self.on_batch_logits(stage, logits, y)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self(x).softmax(dim=-1)

    # ---- checkpoints (subclasses overriding these hooks call super()) --------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # lets zoo.load(path) rebuild checkpoints written by a plain Trainer too (the CLI adds `_class_path`)
        checkpoint["zoo_class_path"] = f"{type(self).__module__}.{type(self).__qualname__}"

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # a network pruned by callbacks.pruning.PruningSchedule is resized before its weights load
        structure = checkpoint.get("pruned_structure")
        if structure:
            from zoo.core.structured_pruning import apply_structure, is_pruned

            if not is_pruned(self, structure):
                apply_structure(self, structure)

    # ---- optimisation ------------------------------------------------------------------
    def configure_optimizers(self):
        from zoo.core.optim import build_optimizer, build_scheduler

        cfg = self.optim_cfg
        optimizer = build_optimizer(
            self.parameters(), cfg["optimizer"], lr=cfg["lr"], momentum=cfg["momentum"],
            weight_decay=cfg["weight_decay"], nesterov=cfg["nesterov"],
        )
        scheduler = build_scheduler(
            optimizer, cfg["scheduler"], max_epochs=self._max_epochs(), warmup_epochs=cfg["warmup_epochs"],
            step_size=cfg["step_size"], milestones=cfg["milestones"], gamma=cfg["gamma"],
            steps_per_epoch=self._steps_per_epoch(),
        )
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def _max_epochs(self) -> int:
        from zoo.core.optim import planned_epochs

        return planned_epochs(self, default=1)

    def _steps_per_epoch(self) -> int:
        trainer = self._trainer
        if trainer is None:
            return 1
        try:
            return max(1, int(trainer.estimated_stepping_batches // self._max_epochs()))
        except Exception:  # no dataloader attached (e.g. built outside fit)
            return 1
