"""Evaluation of self-supervised representations: linear evaluation on a frozen backbone (the SimSiam / MoCo v2 /
SimCLR recipes NASiam uses) and a fast logistic-regression probe for tiny configs.

Linear evaluation reads the *last* checkpoint of a pre-training run (a run folder resolves to ``last.ckpt``),
never one selected on the evaluation split.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from zoo.core.optim import build_optimizer, build_scheduler, planned_epochs

#: The pre-training codes' linear-evaluation recipes (NASiam spec section 6); lr None = 30 * batch / 256.
RECIPES: dict[str, dict[str, Any]] = {
    "simsiam": {"optimizer": "sgd", "lr": None, "weight_decay": 0.0, "scheduler": "cosine"},
    "moco": {"optimizer": "sgd", "lr": 30.0, "weight_decay": 0.0, "scheduler": "multistep"},
    "simclr": {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-6, "scheduler": "none"},
}


def features_of(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The frozen representation: ``forward_features`` if present, else ``backbone``, else the model itself."""
    if hasattr(model, "forward_features"):
        return model.forward_features
    return getattr(model, "backbone", model)


@torch.no_grad()
def extract_features(fn: Callable[[torch.Tensor], torch.Tensor], loader: Iterable,
                     device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(features, labels) of every (x, y) batch of ``loader`` on ``device``, returned on the CPU."""
    feats, labels = [], []
    for batch in loader:
        feats.append(fn(batch[0].to(device)).float().cpu())
        labels.append(batch[1].cpu())
    return torch.cat(feats), torch.cat(labels)


def logistic_probe(model: nn.Module, train_loader: Iterable, test_loader: Iterable, C: float = 1.0,
                   max_iter: int = 2000, standardize: bool = False) -> float:
    """Top-1 accuracy of an L2-regularised (C) logistic regression on frozen features (tiny configs).

    ``standardize`` rescales each feature to unit variance first (it also lifts random-init features a lot).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    fn = features_of(model)
    xtr, ytr = extract_features(fn, train_loader, device)
    xte, yte = extract_features(fn, test_loader, device)
    model.train(was_training)
    xtr, xte = xtr.numpy(), xte.numpy()
    if standardize:
        scaler = StandardScaler().fit(xtr)
        xtr, xte = scaler.transform(xtr), scaler.transform(xte)
    clf = LogisticRegression(C=C, max_iter=max_iter).fit(xtr, ytr.numpy())
    return float((clf.predict(xte) == yte.numpy()).mean())


def last_checkpoint(source: str | Path) -> Path:
    """A run folder (``<run>`` or ``<run>/checkpoints``) resolves to its ``last.ckpt``; a file is used as given."""
    path = Path(source)
    if path.is_dir():
        for cand in (path / "checkpoints" / "last.ckpt", path / "last.ckpt"):
            if cand.is_file():
                return cand
        raise FileNotFoundError(f"{path} holds no last.ckpt (expected <run>/checkpoints/last.ckpt of a zoo fit)")
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return path


def load_pretrained(source: str) -> nn.Module:
    """``zoo.load`` of a run folder (its last checkpoint), checkpoint, weights file or registry name.

    Under LightningCLI the hyperparameters given to the module being built sit in a context variable that a nested
    ``load_from_checkpoint`` would read as its own, so it is cleared while the pre-trained module is rebuilt.
    """
    import zoo

    is_path = "/" in source or source.endswith((".pt", ".pth", ".ckpt")) or Path(source).is_dir()
    target = str(last_checkpoint(source)) if is_path else source
    try:
        from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
    except ImportError:  # older or newer Lightning without the CLI context variable
        return zoo.load(target)
    token = _given_hyperparameters.set(None)
    try:
        return zoo.load(target)
    finally:
        _given_hyperparameters.reset(token)


class LinearEvalModule(pl.LightningModule):
    """Linear classifier on a frozen pre-trained backbone (BN kept in eval mode), weight N(0, 0.01), bias 0.

    ``source``: a ``zoo fit`` run folder or checkpoint (last one), a zoo weights file, or a registry name.
    ``recipe``: ``simsiam`` (SGD, lr 30 B/256, cosine), ``moco`` (SGD lr 30, x0.1 at 60/80), ``simclr`` (Adam 1e-3).
    ``train_augment``: ``cifar`` | ``imagenet`` (RandomResizedCrop ``crop_size`` + flip) | ``none``, on the
    accelerator. ``lr_batch_size`` scales SimSiam's lr (default: the datamodule's batch size); names differ from the
    datamodules' ``batch_size``/``image_size``/``augment`` so Lightning's hparams merge never conflicts.
    """

    def __init__(self, source: str, num_classes: int = 10, recipe: str = "simsiam", lr_batch_size: int | None = None,
                 lr: float | None = None, momentum: float = 0.9, weight_decay: float | None = None,
                 milestones: list[int] | None = None, train_augment: str = "cifar", crop_size: int = 32) -> None:
        super().__init__()
        self.save_hyperparameters()
        if recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r}; expected one of {sorted(RECIPES)}")
        self.backbone = load_pretrained(source)
        for p in self.backbone.parameters():
            p.requires_grad = False
        self.backbone.eval()
        dim = getattr(self.backbone, "num_features", None) or self._probe_dim(crop_size)
        self.fc = nn.Linear(dim, num_classes)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)
        self.aug = self._augment(train_augment, crop_size)
        self.acc = nn.ModuleDict({f"{s}_acc": MulticlassAccuracy(num_classes, average="micro") for s in ("train", "val", "test")})

    def _probe_dim(self, size: int) -> int:
        chans = getattr(getattr(self.backbone, "backbone", None), "normalize", None)
        c = chans.mean.shape[1] if chans is not None else 3
        with torch.no_grad():
            return int(features_of(self.backbone)(torch.zeros(2, c, size, size)).shape[1])

    @staticmethod
    def _augment(name: str, size: int) -> nn.Module:
        if name == "none":
            return nn.Identity()
        import kornia.augmentation as K

        if name not in ("cifar", "imagenet"):
            raise ValueError(f"unknown train_augment {name!r}; expected cifar, imagenet or none")
        return nn.Sequential(K.RandomResizedCrop((size, size)), K.RandomHorizontalFlip())

    def train(self, mode: bool = True) -> "LinearEvalModule":
        super().train(mode)
        self.backbone.eval()  # frozen features: BN statistics stay those of pre-training
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            h = features_of(self.backbone)(x)
        return self.fc(h.flatten(1))

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        x, y = batch[0], batch[1]
        if stage == "train":
            with torch.no_grad():
                x = self.aug(x)
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.acc[f"{stage}_acc"](logits, y)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, sync_dist=True, prog_bar=stage != "train")
        self.log(f"{stage}/acc", self.acc[f"{stage}_acc"], on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")

    def _batch(self) -> int:
        if self.hparams.lr_batch_size:
            return int(self.hparams.lr_batch_size)
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        return int(getattr(dm, "batch_size", 256) or 256)

    def configure_optimizers(self):
        hp = self.hparams
        recipe = RECIPES[hp.recipe]
        lr = hp.lr if hp.lr is not None else (recipe["lr"] if recipe["lr"] is not None else 30.0 * self._batch() / 256)
        wd = hp.weight_decay if hp.weight_decay is not None else recipe["weight_decay"]
        opt = build_optimizer(self.fc.parameters(), recipe["optimizer"], lr=lr, momentum=hp.momentum, weight_decay=wd)
        sched = build_scheduler(opt, recipe["scheduler"], max_epochs=planned_epochs(self, default=100),
                                milestones=hp.milestones or [60, 80])
        return opt if sched is None else {"optimizer": opt, "lr_scheduler": sched}
