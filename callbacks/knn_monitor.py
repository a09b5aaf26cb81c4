"""``KNNMonitor``: weighted k-nearest-neighbour accuracy of a self-supervised model's features (k = 200).

The SSL monitor of SimSiam / MoCo / NASiam (Wu et al., 2018 style): the training images (un-augmented) form the
memory bank; each validation image votes with its k most cosine-similar bank images, weighted by the
cosine similarity (``weighting="cosine"``) or by exp(sim / T) (``"exp"``, the SimCLR code's monitor).
Works with any LightningModule exposing ``forward_features(x)`` or a ``backbone``; it is a monitor only.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import lightning.pytorch as pl
import torch
import torch.nn.functional as F


def knn_predict(features: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor, num_classes: int,
                k: int = 200, weighting: str = "cosine", temperature: float = 0.1) -> torch.Tensor:
    """Class scores (N, C) from the k nearest bank rows by cosine similarity; features/bank need not be normalised."""
    if weighting not in ("cosine", "exp"):
        raise ValueError(f"weighting must be 'cosine' or 'exp', got {weighting!r}")
    sim = F.normalize(features, dim=1) @ F.normalize(bank, dim=1).t()
    k = min(k, bank.shape[0])
    top_sim, top_idx = sim.topk(k, dim=1)
    weights = (top_sim / temperature).exp() if weighting == "exp" else top_sim
    one_hot = F.one_hot(bank_labels[top_idx], num_classes).to(weights.dtype)
    return (one_hot * weights.unsqueeze(-1)).sum(dim=1)


def feature_fn(module: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The representation to monitor: ``forward_features`` if present, else ``backbone``."""
    if hasattr(module, "forward_features"):
        return module.forward_features
    if hasattr(module, "backbone"):
        return module.backbone
    raise ValueError(f"{type(module).__name__} exposes neither forward_features(x) nor a backbone")


def embedding_fn(module: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The projector output (``embed`` of the module or of its ``net``), what the SimSiam/MoCo code's monitor reads."""
    for owner in (module, getattr(module, "net", None)):
        if owner is not None and hasattr(owner, "embed"):
            return owner.embed
    raise ValueError(f"{type(module).__name__} has no embed(x) (nor net.embed) for features='embedding'")


def _loaders(loader: Any) -> list[Iterable]:
    """The plain loaders inside a (possibly combined) loader: a search's weight/alpha halves are both bank data."""
    iterables = getattr(loader, "iterables", None)
    if isinstance(iterables, dict):
        return list(iterables.values())
    if isinstance(iterables, (list, tuple)):
        return list(iterables)
    return [loader]


@torch.no_grad()
def extract(fns: dict[str, Callable[[torch.Tensor], torch.Tensor]], loader: Any, device: torch.device,
            limit: int | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Each named feature function's features, and the labels, of every (x, y) batch of ``loader`` in one pass
    (no augmentation is applied)."""
    feats: dict[str, list[torch.Tensor]] = {name: [] for name in fns}
    labels = []
    for inner in _loaders(loader):
        for i, batch in enumerate(inner):
            if limit is not None and i >= limit:
                break
            x = batch[0].to(device)
            for name, fn in fns.items():
                feats[name].append(fn(x).float())
            labels.append(batch[1].to(device))
    return {name: torch.cat(f) for name, f in feats.items()}, torch.cat(labels)


class KNNMonitor(pl.Callback):
    """Log ``<stage>/knn_acc`` (top-1 of a weighted k-NN on frozen features) at each validation and test end.

    ``features``: ``backbone`` (``<stage>/knn_acc``), ``embedding`` (the projector output, ``<stage>/knn_acc_embedding``)
    or ``both``. ``every_n_epochs`` skips validations; ``max_bank_batches`` caps the bank (None = the whole train set).
    """

    def __init__(self, k: int = 200, weighting: str = "cosine", temperature: float = 0.1, every_n_epochs: int = 1,
                 max_bank_batches: int | None = None, num_classes: int | None = None, features: str = "backbone") -> None:
        super().__init__()
        if k < 1 or every_n_epochs < 1:
            raise ValueError(f"k and every_n_epochs must be >= 1, got {k}, {every_n_epochs}")
        if features not in ("backbone", "embedding", "both"):
            raise ValueError(f"features must be backbone, embedding or both, got {features!r}")
        self.kinds = {"backbone": ["backbone"], "embedding": ["embedding"], "both": ["backbone", "embedding"]}[features]
        self.k, self.weighting, self.temperature = k, weighting, temperature
        self.every_n_epochs, self.max_bank_batches, self.num_classes = every_n_epochs, max_bank_batches, num_classes
        self._query: list[tuple[dict[str, torch.Tensor], torch.Tensor]] = []
        self.history: list[tuple[int, float]] = []

    def _fns(self, pl_module: pl.LightningModule) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
        makers = {"backbone": feature_fn, "embedding": embedding_fn}
        return {kind: makers[kind](pl_module) for kind in self.kinds}

    def _active(self, trainer: pl.Trainer, stage: str) -> bool:
        return stage == "test" or (trainer.current_epoch + 1) % self.every_n_epochs == 0 or trainer.sanity_checking

    def _collect(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, stage: str) -> None:
        if self._active(trainer, stage):
            with torch.no_grad():
                feats = {kind: fn(batch[0]).float() for kind, fn in self._fns(pl_module).items()}
            self._query.append((feats, batch[1]))

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._collect(trainer, pl_module, batch, "val")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._collect(trainer, pl_module, batch, "test")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._score(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._score(trainer, pl_module, "test")

    def _num_classes(self, trainer: pl.Trainer, labels: torch.Tensor) -> int:
        if self.num_classes:
            return self.num_classes
        n = getattr(trainer.datamodule, "num_classes", None) if trainer.datamodule is not None else None
        return int(n) if n else int(labels.max()) + 1

    def _score(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        query, self._query = self._query, []
        if not query:
            return
        was_training = pl_module.training
        pl_module.eval()
        dm = trainer.datamodule
        if dm is None:
            raise ValueError("KNNMonitor needs a datamodule whose train_dataloader() gives labelled (x, y) batches")
        with torch.random.fork_rng(devices=[]):  # a shuffled bank loader must not move the training RNG
            banks, bank_y = extract(self._fns(pl_module), dm.train_dataloader(), pl_module.device,
                                    self.max_bank_batches)
        for kind, bank in banks.items():
            qx = torch.cat([q[kind] for q, _ in query])
            qy = torch.cat([y for _, y in query]).to(qx.device)
            scores = knn_predict(qx, bank, bank_y, self._num_classes(trainer, torch.cat([bank_y, qy])), self.k,
                                 self.weighting, self.temperature)
            correct = trainer.strategy.reduce((scores.argmax(1) == qy).float().sum(), reduce_op="sum")
            total = trainer.strategy.reduce(torch.tensor(float(len(qy)), device=qx.device), reduce_op="sum")
            acc = float(correct / total)
            if kind == "backbone" and stage == "val" and not trainer.sanity_checking:
                self.history.append((trainer.current_epoch, acc))
            name = f"{stage}/knn_acc" + ("" if kind == "backbone" else "_embedding")
            pl_module.log(name, acc, on_step=False, on_epoch=True, sync_dist=False)
        pl_module.train(was_training)
