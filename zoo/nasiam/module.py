"""NASiam pre-training (Heuillet et al., arXiv 2302.00059): a SimSiam / MoCo v2 / SimCLR network with a hand-designed,
derived (genotype) or published head, trained from scratch with the framework's recipe.

Two views are drawn on the accelerator (kornia) in ``on_after_batch_transfer``; the module logs the SSL loss and
the per-dimension std of L2-normalised embeddings (``*/z_std``, 1/sqrt(d) without collapse, 0 when collapsed).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import lightning.pytorch as pl
import torch

from zoo.core.optim import build_optimizer, planned_epochs, step_factor
from zoo.nasiam.augment import build_augment
from zoo.nasiam.frameworks import SiameseNet
from zoo.nasiam.losses import embedding_std

NET_ARGS = ("framework", "backbone", "in_chans", "cifar_stem", "mean", "std", "width", "head", "dim", "pred_dim",
            "hidden_dim", "proj_layers", "pred_layers", "standard_layers", "queue_size", "key_momentum", "temperature")


def cosine_factor(epoch: int, epochs: int) -> float:
    """The authors' per-epoch schedule: lr = base * 0.5 (1 + cos(pi epoch / epochs))."""
    return 0.5 * (1.0 + math.cos(math.pi * min(epoch, epochs) / max(1, epochs)))


class SSLMixin:
    """What the pre-training and search modules share: the network, the views, and the collapse statistics."""

    net: SiameseNet

    def _build_net(self, hp: Any) -> None:
        kwargs = {k: hp[k] for k in NET_ARGS}
        kwargs["momentum"] = kwargs.pop("key_momentum")
        primitives = hp.get("primitives")  # None: the framework's own op order (SimCLR's differs)
        self.net = SiameseNet(**kwargs, primitives=None if primitives is None else list(primitives))
        if self.net.genotype_spec is not None:  # store the resolved head so the checkpoint needs no genotype file
            hp["head"] = self.net.genotype_spec.to_dict()
        self.augment = build_augment(hp["views"], hp["framework"], hp.get("view_size"))
        self._zsum: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)

    # ---- views -------------------------------------------------------------------------------------------
    def make_views(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return self.augment(x), self.augment(x)

    def _view_pair(self, pair: Any) -> Any:
        x, y = pair[0], pair[1]
        return (self.make_views(x), y) if torch.is_tensor(x) else (x, y)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        trainer = getattr(self, "_trainer", None)
        if trainer is None or not trainer.training:
            return batch
        inner = batch[0] if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], dict) else batch
        if isinstance(inner, dict):
            return {k: self._view_pair(v) for k, v in inner.items()}
        return self._view_pair(batch)

    def views_of(self, pair: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The two views of a (x, y) pair; made here when a datamodule's own batch hook shadowed the module's."""
        x = pair[0]
        return self.make_views(x) if torch.is_tensor(x) else (x[0], x[1])

    # ---- evaluation: collapse statistic (the kNN monitor is a callback) ------------------------------------
    def _collect(self, batch: Any, stage: str) -> None:
        z = torch.nn.functional.normalize(self.net.embed(batch[0]).float(), dim=1)
        acc = self._zsum.setdefault(stage, torch.zeros(3, z.shape[1], device=z.device))
        acc[0] += len(z)
        acc[1] += z.sum(0)
        acc[2] += (z * z).sum(0)

    def _log_z(self, stage: str) -> None:
        acc = self._zsum.pop(stage, None)
        if acc is None:
            return
        acc = self.trainer.strategy.reduce(acc, reduce_op="sum")
        n = acc[0, 0].clamp_min(2)
        var = (acc[2] - acc[1] ** 2 / n) / (n - 1)
        self.log(f"{stage}/z_std", var.clamp_min(0).sqrt().mean(), sync_dist=False)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._collect(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_z("val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._collect(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_z("test")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Name the class, so ``zoo.load(path)`` also reads checkpoints written outside the ``zoo`` CLI."""
        checkpoint["zoo_class_path"] = f"{type(self).__module__}.{type(self).__qualname__}"

    def _log_train(self, loss: torch.Tensor, z: torch.Tensor) -> None:
        self.log("train/loss", loss.detach(), on_step=True, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("train/z_std", embedding_std(z), on_step=False, on_epoch=True, sync_dist=True)


class NASiamModule(SSLMixin, pl.LightningModule):
    """Pre-train a siamese SSL network; ``head`` = ``standard`` (hand-designed), a published genotype name or a
    NASiam search's genotype.json. Recipe (spec section 6): SGD (SimSiam/MoCo) with the authors' per-epoch cosine
    and a constant predictor lr (``fix_pred_lr``), or Adam (SimCLR)."""

    def __init__(
        self, framework: str = "simsiam", backbone: str = "resnet18", in_chans: int = 3, cifar_stem: bool = True,
        mean: Sequence[float] = (0.4914, 0.4822, 0.4465), std: Sequence[float] = (0.2470, 0.2435, 0.2616),
        width: int = 32, head: str | dict = "standard", dim: int = 2048, pred_dim: int = 512, hidden_dim: int = 512,
        proj_layers: int = 6, pred_layers: int = 4, standard_layers: int = 2, queue_size: int = 4096,
        key_momentum: float = 0.99, temperature: float = 0.1, views: str = "cifar", view_size: int | None = None,
        optimizer: str = "sgd", lr: float = 0.12, momentum: float = 0.9, weight_decay: float = 5e-4,
        fix_pred_lr: bool = True, scheduler: str = "cosine", milestones: list[int] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._build_net(self.hparams)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x1, x2 = self.views_of(batch)
        loss, z = self.net.ssl_loss(x1, x2)
        self._log_train(loss, z)
        return loss

    def configure_optimizers(self):
        return ssl_optimizers(self, self.net.weight_parameters(), self.hparams)


def ssl_optimizers(module: pl.LightningModule, params: list[torch.nn.Parameter], hp: Any):
    """The weight optimiser of the spec's recipes with the per-epoch cosine (predictor lr fixed when asked).

    ``scheduler``: ``cosine`` (the authors' code: SimSiam's, and MoCo's, whose ``main()`` sets ``args.cos = True``),
    ``multistep`` (x0.1 at ``milestones``, default [120, 160]: MoCo's ``--schedule`` branch, which that line skips)
    or ``none`` (SimCLR)."""
    pred = {id(p) for p in module.net.predictor.parameters()} if module.net.predictor is not None else set()
    fixed = [p for p in params if id(p) in pred] if hp.fix_pred_lr else []
    rest = [p for p in params if id(p) not in {id(q) for q in fixed}]
    groups = [{"params": rest, "fix_lr": False}] + ([{"params": fixed, "fix_lr": True}] if fixed else [])
    opt = build_optimizer(groups, hp.optimizer, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
    if hp.scheduler == "none":
        return opt
    if hp.scheduler not in ("cosine", "multistep"):
        raise ValueError(f"unknown scheduler {hp.scheduler!r}; expected cosine, multistep or none")
    epochs = planned_epochs(module, default=100)
    milestones = list(hp.get("milestones") or [120, 160])
    if hp.scheduler == "cosine":
        decay = lambda e, n=epochs: cosine_factor(e, n)  # noqa: E731
    else:
        decay = lambda e: step_factor(e, milestones)  # noqa: E731
    lambdas = [(lambda e: 1.0) if g["fix_lr"] else decay for g in groups]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambdas)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
