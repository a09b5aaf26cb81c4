"""LightningModule of the quickstart: :class:`SmallCNN` trained by the shared classifier base."""
from __future__ import annotations

from zoo.core.classifier import ClassifierModule, OptimizerName, SchedulerName
from zoo.quickstart.net import SmallCNN


class QuickstartClassifier(ClassifierModule):
    """Small CNN on digits; every argument is a plain value so LightningCLI and checkpoints rebuild it."""

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 1,
        width: int = 32,
        drop_rate: float = 0.1,
        optimizer: OptimizerName = "adamw",
        lr: float = 3e-3,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        scheduler: SchedulerName = "cosine",
        warmup_epochs: int = 0,
        label_smoothing: float = 0.0,
    ) -> None:
        net = SmallCNN(num_classes=num_classes, in_chans=in_chans, width=width, drop_rate=drop_rate)
        super().__init__(
            net=net, num_classes=num_classes, optimizer=optimizer, lr=lr, momentum=momentum,
            weight_decay=weight_decay, scheduler=scheduler, warmup_epochs=warmup_epochs,
            label_smoothing=label_smoothing,
        )
