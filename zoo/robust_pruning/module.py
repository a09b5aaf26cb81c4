"""LightningModule of MRPF (Bai et al. 2024): dense (adversarial) pre-training, pruning, robust fine-tuning.

One module covers both phases: before pruning it trains with ``pretrain_loss`` (natural or PGD-AT),
after the :class:`callbacks.pruning.PruningSchedule` callback prunes it (or when built with a pruned
``structure``) it fine-tunes with ``finetune_loss`` (natural, PGD-AT or TRADES beta = 6) and its own schedule.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from zoo.core.classifier import ClassifierModule, OptimizerName, SchedulerName
from zoo.core.structured_pruning import apply_structure, is_pruned, record_structure
from zoo.robust_pruning.losses import RobustLoss, robust_loss

Arch = Literal["digits_cnn", "resnet18", "vgg16_bn"]


def build_net(arch: Arch = "digits_cnn", num_classes: int = 10, in_chans: int = 1, input_size: int = 8,
              width: float = 1.0, mean: list[float] | None = None, std: list[float] | None = None,
              structure: dict[str, list[int]] | None = None) -> nn.Module:
    """The paper's networks (digits CNN of the faithful check, ResNet-18 CIFAR, VGG-16-BN), optionally pruned."""
    from zoo.core.resnet_cifar import CIFAR_MEAN, CIFAR_STD, resnet18_cifar
    from zoo.core.vgg import vgg16_bn
    from zoo.robust_pruning.net import DigitsCNN

    if arch == "digits_cnn":
        widths = [max(1, round(w * width)) for w in (16, 32, 64, 64)]
        net = DigitsCNN(num_classes, in_chans, widths, max(1, round(64 * width)), input_size,
                        mean=(mean or [0.3])[0], std=(std or [0.4])[0])
    else:
        m = list(mean) if mean else list(CIFAR_MEAN[:in_chans]) + [0.45] * max(0, in_chans - 3)
        s = list(std) if std else list(CIFAR_STD[:in_chans]) + [0.25] * max(0, in_chans - 3)
        if arch == "resnet18":
            net = resnet18_cifar(num_classes, in_chans, width=max(1, round(64 * width)), mean=m, std=s)
        elif arch == "vgg16_bn":
            net = vgg16_bn(num_classes, in_chans, width_mult=width, mean=m, std=s)
        else:
            raise ValueError(f"unknown arch {arch!r}; expected 'digits_cnn', 'resnet18' or 'vgg16_bn'")
    if structure:
        apply_structure(net, structure)
    return net


class RobustPruneModule(ClassifierModule):
    """Pre-train (natural / PGD-AT), prune (by callback), fine-tune (natural / PGD-AT / TRADES) one network."""

    def __init__(
        self,
        arch: Arch = "digits_cnn",
        num_classes: int = 10,
        in_chans: int = 1,
        input_size: int = 8,
        width: float = 1.0,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        structure: dict[str, list[int]] | None = None,
        init_weights: str | None = None,
        pretrain_loss: Literal["natural", "pgd_at"] = "pgd_at",
        finetune_loss: RobustLoss = "trades",
        trades_beta: float = 6.0,
        train_eps: float = 8 / 255,
        train_alpha: float = 2 / 255,
        train_steps: int = 10,
        optimizer: OptimizerName = "sgd",
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        scheduler: SchedulerName = "multistep",
        milestones: list[int] | None = None,
        gamma: float = 0.1,
        pretrain_epochs: int | None = None,
        finetune_lr: float = 0.01,
        finetune_scheduler: SchedulerName = "cosine",
    ) -> None:
        if pretrain_loss not in ("natural", "pgd_at"):
            raise ValueError(f"pretrain_loss must be 'natural' or 'pgd_at', got {pretrain_loss!r}")
        if finetune_loss not in ("natural", "pgd_at", "trades"):
            raise ValueError(f"finetune_loss must be 'natural', 'pgd_at' or 'trades', got {finetune_loss!r}")
        net = build_net(arch, num_classes, in_chans, input_size, width, mean, std, structure)
        super().__init__(net=net, num_classes=num_classes, optimizer=optimizer, lr=lr, momentum=momentum,
                         weight_decay=weight_decay, scheduler=scheduler,
                         milestones=milestones if milestones is not None else [50, 75], gamma=gamma)
        self.pruned = bool(structure)

    # ---- phases ------------------------------------------------------------------------------
    def mark_pruned(self, structure: dict[str, list[int]]) -> None:
        """Called by the pruning callback: switch to fine-tuning and remember the architecture."""
        self.pruned = True
        self.hparams["structure"] = structure

    @property
    def train_loss_kind(self) -> str:
        return self.hparams.finetune_loss if self.pruned else self.hparams.pretrain_loss

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.prepare_dense()

    def prepare_dense(self) -> None:
        """Load ``init_weights`` once before the first fit (also called by the pruning callback, which runs first)."""
        path = self.hparams.init_weights
        trainer = self._trainer
        resuming = trainer is not None and bool(trainer.ckpt_path)
        if path and not self.pruned and not resuming and not getattr(self, "_dense_loaded", False):
            self.load_dense_weights(path)
        self._dense_loaded = True

    def load_dense_weights(self, path: str) -> None:
        """Start from a trained dense network: a Lightning checkpoint of this module or a zoo weights file."""
        from zoo.hub import safe_load

        payload = safe_load(path)
        state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected a Lightning checkpoint or zoo weights file with a 'state_dict'")
        if any(k.startswith("net.") for k in state):
            state = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
        structure = payload.get("hyper_parameters", {}).get("structure") or payload.get("arch_kwargs", {}).get("structure")
        if structure:
            apply_structure(self.net, structure)
            self.mark_pruned(structure)
        self.net.load_state_dict(state)

    # ---- steps -------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch[0], batch[1]
        hp = self.hparams
        loss, logits = robust_loss(self.net, x, y, self.train_loss_kind, hp.train_eps, hp.train_alpha,
                                   hp.train_steps, hp.trades_beta)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, sync_dist=True)
        self.metrics["train_acc"](logits, y)
        self.log("train/acc", self.metrics["train_acc"], on_step=False, on_epoch=True, prog_bar=True)
        return loss

    # ---- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self):
        from zoo.core.optim import build_optimizer, build_scheduler

        hp = self.hparams
        if self.pruned:
            lr, name = hp.finetune_lr, hp.finetune_scheduler
            epoch = self._trainer.current_epoch if self._trainer is not None else 0
            span = max(1, self._max_epochs() - epoch)
        else:
            lr, name, span = hp.lr, hp.scheduler, hp.pretrain_epochs or self._max_epochs()
        opt = build_optimizer(self.parameters(), hp.optimizer, lr=lr, momentum=hp.momentum,
                              weight_decay=hp.weight_decay, nesterov=bool(hp.get("nesterov", False)))
        sched = build_scheduler(opt, name, max_epochs=span, milestones=hp.get("milestones") or [50, 75], gamma=hp.get("gamma", 0.1),
                                steps_per_epoch=self._steps_per_epoch())
        return opt if sched is None else {"optimizer": opt, "lr_scheduler": sched}

    # ---- checkpoints keep the pruned architecture ------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.pruned:
            structure = record_structure(self.net)
            checkpoint["pruned_structure"] = structure
            checkpoint["hyper_parameters"]["structure"] = structure

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        structure = checkpoint.get("pruned_structure")
        if structure and not is_pruned(self.net, structure):
            apply_structure(self.net, structure)
            self.pruned = True
