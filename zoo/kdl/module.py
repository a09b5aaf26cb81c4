"""LightningModule of the kernel-function studies (Mahmoudi et al. 2020/2023) on the shared classifier base.

Besides the base metrics it logs every layer's learnt kernel parameters (``kernel/<layer>.<c|gamma|sigma>``),
the train-minus-validation accuracy gap (``gap/train_minus_val_acc``, the overfitting signal of paper B),
the mean per-class accuracy (RAF-DB's second metric) and per-class confusion matrices.
"""
from __future__ import annotations

from typing import Any

import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from zoo.core.classifier import ClassifierModule, OptimizerName, SchedulerName
from zoo.kdl.kernels import kernel_parameters
from zoo.kdl.nets import KernelNet

NET_ARGS = ("arch", "num_classes", "in_chans", "input_size", "conv_kernel", "pool_type", "fc_kernel", "degree",
            "c_init", "gamma_init", "conv_gamma_init", "sigma_init", "pool_degree", "pool_c_init",
            "learn_kernel_params", "per_unit", "bias_inside", "kdl_on_logits", "fc_norm", "conv_input_norm", "dropout",
            "mean", "std")


class KernelClassifier(ClassifierModule):
    """Trains :class:`KernelNet`; the same recipe for linear and kernel layers so only the layer changes."""

    def __init__(
        self,
        arch: str = "digits_cnn",
        num_classes: int = 10,
        in_chans: int | None = None,
        input_size: int | None = None,
        conv_kernel: str = "linear",
        pool_type: str = "max",
        fc_kernel: str = "poly",
        degree: int = 2,
        c_init: float = 1.0,
        gamma_init: float | None = 0.5,
        conv_gamma_init: float | None = None,
        sigma_init: float = 2.0,
        pool_degree: int = 2,
        pool_c_init: float = 0.0,
        learn_kernel_params: bool = True,
        per_unit: bool = False,
        bias_inside: bool = False,
        kdl_on_logits: bool = False,
        fc_norm: str = "none",
        conv_input_norm: str | None = None,
        dropout: float | None = None,
        mean: float | None = None,
        std: float | None = None,
        class_names: list[str] | None = None,
        optimizer: OptimizerName = "adam",
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        scheduler: SchedulerName = "cosine",
        warmup_epochs: int = 0,
        step_size: int = 30,
        milestones: list[int] | None = None,
        gamma: float = 0.1,
        label_smoothing: float = 0.0,
    ) -> None:
        local = dict(locals())
        self.net_kwargs: dict[str, Any] = {k: local[k] for k in NET_ARGS}
        net = KernelNet(**self.net_kwargs)
        super().__init__(
            net=net, num_classes=num_classes, optimizer=optimizer, lr=lr, momentum=momentum,
            weight_decay=weight_decay, nesterov=nesterov, scheduler=scheduler, warmup_epochs=warmup_epochs,
            step_size=step_size, milestones=milestones, gamma=gamma, label_smoothing=label_smoothing,
        )
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for num_classes={num_classes}")
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        for stage in ("val", "test"):
            self.metrics[f"{stage}_class_acc"] = MulticlassAccuracy(num_classes, average="none")
            self.metrics[f"{stage}_confusion"] = MulticlassConfusionMatrix(num_classes)
        self._correct = {"train": torch.zeros(()), "val": torch.zeros(())}
        self._seen = {"train": torch.zeros(()), "val": torch.zeros(())}
        self.confusion: dict[str, torch.Tensor] = {}  # last computed confusion matrix per stage (rows = truth)

    # ---- steps ---------------------------------------------------------------------------------
    def batch_logits(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 5:  # multi-crop evaluation (B, crops, C, H, W): log of the crops' mean probability
            probs = self(x.flatten(0, 1)).softmax(-1).view(x.shape[0], x.shape[1], -1).mean(1)
            return probs.clamp_min(1e-12).log()
        return self(x)

    def on_batch_logits(self, stage: str, logits: torch.Tensor, y: torch.Tensor) -> None:
        if stage != "train":
            self.metrics[f"{stage}_class_acc"].update(logits, y)
            self.metrics[f"{stage}_confusion"].update(logits, y)
        if stage in self._correct:  # kept on the device: no host sync per step
            correct = (logits.argmax(-1) == y).sum().detach().float()
            self._correct[stage] = self._correct[stage].to(correct.device) + correct
            self._seen[stage] = self._seen[stage].to(correct.device) + float(y.numel())

    # ---- epoch-level logs ----------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self._correct["train"], self._seen["train"] = torch.zeros(()), torch.zeros(())

    def on_validation_epoch_start(self) -> None:
        self._correct["val"], self._seen["val"] = torch.zeros(()), torch.zeros(())

    def _global_acc(self, stage: str) -> float | None:
        pair = torch.stack([self._correct[stage], self._seen[stage]]).to(self.device)
        if self.trainer is not None and self.trainer.world_size > 1:
            pair = self.trainer.strategy.reduce(pair, reduce_op="sum")
        return None if pair[1] == 0 else float(pair[0] / pair[1])

    def on_train_epoch_end(self) -> None:
        for key, value in kernel_parameters(self.net).items():
            self.log(f"kernel/{key}", value, on_epoch=True, sync_dist=False)

    def on_validation_epoch_end(self) -> None:
        self._per_class_logs("val")
        if self.trainer.sanity_checking:
            return
        train_acc, val_acc = self._global_acc("train"), self._global_acc("val")
        if train_acc is not None and val_acc is not None:
            self.log("gap/train_minus_val_acc", train_acc - val_acc, sync_dist=False)

    def on_test_epoch_end(self) -> None:
        self._per_class_logs("test")

    def _per_class_logs(self, stage: str) -> None:
        """Mean per-class accuracy (RAF-DB's metric), per-class accuracies and the confusion matrix."""
        class_acc_metric, conf_metric = self.metrics[f"{stage}_class_acc"], self.metrics[f"{stage}_confusion"]
        if not class_acc_metric.update_called:
            return
        per_class = class_acc_metric.compute()
        self.log(f"{stage}/mean_class_acc", per_class.mean(), sync_dist=True)
        for name, acc in zip(self.class_names, per_class):
            self.log(f"{stage}/class_acc/{name}", acc, sync_dist=True)
        self.confusion[stage] = conf_metric.compute().cpu()
        class_acc_metric.reset()
        conf_metric.reset()
        if stage == "test" or not self.trainer.sanity_checking:
            log_confusion(self, f"{stage}/confusion_matrix", self.confusion[stage], self.class_names)

    # ---- checkpoints -----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record the network's registry name and kwargs so ``zoo.load(ckpt_path)`` can rebuild it."""
        super().on_save_checkpoint(checkpoint)
        checkpoint["arch"] = "kdl_net"
        checkpoint["arch_kwargs"] = dict(self.net_kwargs)
        checkpoint.setdefault("metadata", {"paper": "kdl", "source": "lightning checkpoint"})


def log_confusion(module: KernelClassifier, key: str, matrix: torch.Tensor, class_names: list[str]) -> None:
    """Send a confusion matrix to W&B as a table (rows = true class); other loggers get nothing."""
    trainer = module._trainer
    if trainer is None or trainer.global_rank != 0:
        return
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger":
            rows = [[true, pred, int(matrix[i, j])] for i, true in enumerate(class_names)
                    for j, pred in enumerate(class_names)]
            logger.log_table(key=key, columns=["true", "predicted", "count"], data=rows)
