"""``DartsEvalModule``: trains a discrete DARTS-family network with the DARTS evaluation recipe.

Auxiliary loss (weight 0.4), drop-path ramped linearly 0 -> p over training, cutout and the CIFAR
AutoAugment policy on the accelerator (kornia), SGD + cosine (CIFAR) or x0.97/epoch (ImageNet).
"""
from __future__ import annotations

from typing import Any, Literal, Sequence

import torch

from zoo.core.classifier import ClassifierModule, OptimizerName, SchedulerName
from zoo.nas.cells import DartsNetwork
from zoo.nas.genotype import resolve_genotype


def cutout(x: torch.Tensor, length: int, fill: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Set one random ``length`` x ``length`` square per image (centre uniform over the image, clipped) to ``fill``:
    a number or a per-channel ``(1, C, 1, 1)`` tensor (the dataset mean, which is 0 after normalisation)."""
    if length <= 0:
        return x
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1, 1), device=x.device)
    cx = torch.randint(0, w, (n, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((ys >= cy - length // 2) & (ys < cy + length - length // 2)
              & (xs >= cx - length // 2) & (xs < cx + length - length // 2))
    hole = inside.unsqueeze(1)
    return torch.where(hole, torch.as_tensor(fill, dtype=x.dtype, device=x.device), x)


class DartsEvalModule(ClassifierModule):
    """Evaluation training of a DARTS/D-DARTS genotype (Liu et al., 2019; Heuillet et al., 2021).

    ``genotype``: a published name (``DARTS_V2``, ``DDARTS_SPARSE_CIFAR10``), a genotype dict or the path of a
    ``genotype*.json`` written by the search; it is stored in the checkpoint as a dict.
    """

    def __init__(
        self, genotype: str | dict = "DARTS_V2", num_classes: int = 10, in_chans: int = 3, C: int = 36,
        layers: int = 20, stem: Literal["cifar", "imagenet"] = "cifar", auxiliary: bool = True,
        auxiliary_weight: float = 0.4, drop_path_prob: float = 0.2, reference_layout: bool = False,
        cutout_length: int = 0, auto_augment: bool = False, mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None, optimizer: OptimizerName = "sgd", lr: float = 0.025,
        momentum: float = 0.9, weight_decay: float = 3e-4, scheduler: SchedulerName = "cosine",
        step_size: int = 1, gamma: float = 0.97, label_smoothing: float = 0.0,
    ) -> None:
        genotype = resolve_genotype(genotype).to_dict()  # stored as a plain dict: checkpoints need no file
        net = DartsNetwork(genotype, C=C, num_classes=num_classes, layers=layers, auxiliary=auxiliary,
                           drop_path_prob=0.0, in_chans=in_chans, stem=stem, reference_layout=reference_layout,
                           mean=mean, std=std)
        super().__init__(net=net, num_classes=num_classes, optimizer=optimizer, lr=lr, momentum=momentum,
                         weight_decay=weight_decay, scheduler=scheduler, step_size=step_size, gamma=gamma,
                         label_smoothing=label_smoothing)
        # Built here, not on the first step, and kept out of the module tree: its 50 policy parameters are not
        # trained, and a submodule created in a hook changed the parameter set during fit (checkpoints gained
        # ``_auto_aug.*`` keys that construction does not know, so resume and load_from_checkpoint failed).
        self._auto_aug_holder: tuple[torch.nn.Module, ...] = ()
        if auto_augment:
            from kornia.augmentation.auto import AutoAugment

            with torch.device("cpu"):  # its policy reads magnitudes with .item(): never on a meta-device build
                self._auto_aug_holder = (AutoAugment("cifar10").requires_grad_(False),)
        # LightningCLI records the arguments as given (maybe a file path): store the genotype itself
        self.hparams["genotype"] = genotype
        if getattr(self, "_hparams_initial", None) is not None:
            self._hparams_initial["genotype"] = genotype

    def on_train_epoch_start(self) -> None:
        """Drop-path probability ramps linearly: p * epoch / max_epochs (DARTS ``train.py``)."""
        self.net.drop_path_prob = self.hparams.drop_path_prob * self.current_epoch / self._max_epochs()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints written before AutoAugment left the module tree carry ``_auto_aug.*`` keys: drop them."""
        state = checkpoint.get("state_dict", {})
        for key in [k for k in state if k.startswith("_auto_aug.")]:
            del state[key]

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """AutoAugment (if on), then Cutout filled with the normalisation mean: the authors cut after ``Normalize``,
        so their holes are 0 after normalisation; the zoo normalises inside the network, so it fills with the mean."""
        if self._auto_aug_holder:
            x = self._auto_aug_holder[0].to(x.device)(x.clamp(0, 1))
        return cutout(x, self.hparams.cutout_length, fill=self.net.mean.to(x.dtype))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch[0], batch[1]
        x = self.augment(x)
        logits, aux = self.net.forward_with_aux(x)
        loss = self.loss(logits, y)
        if aux is not None:
            aux_loss = self.loss(aux, y)
            self.log("train/aux_loss", aux_loss, on_step=False, on_epoch=True, sync_dist=True)
            loss = loss + self.hparams.auxiliary_weight * aux_loss
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, sync_dist=True)
        self.metrics["train_acc"](logits, y)
        self.log("train/acc", self.metrics["train_acc"], on_step=False, on_epoch=True, prog_bar=True)
        return loss
