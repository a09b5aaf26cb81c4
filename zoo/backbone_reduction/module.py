"""LightningModule of RRR-Net (Sun et al., IJCNN 2023): methods [A]-[D] by config, per-branch AdamW under manual
optimisation, stem BatchNorm warm-up, raw final weights evaluated (the authors' protocol) or the zoo's optional EMA,
per-branch and ensemble accuracy."""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from zoo.backbone_reduction.build import build_rrrnet
from zoo.backbone_reduction.ema import ParameterEMA
from zoo.backbone_reduction.nets import RESNET152_LAYERS, RESNET_PLANES, BranchEnsemble, ensemble_log_probs
from zoo.core.classifier import ClassifierModule

NET_ARGS = ("num_classes", "layers", "planes", "stem", "stem_width", "source", "nb_blocks", "num_branches",
            "split_stage", "shift", "slice_seed", "reinit_bn", "slice_mode")


class RRRNetModule(ClassifierModule):
    """[A] ``nb_blocks=None, trainable="head"``; [B] ``nb_blocks=None, trainable="all"``; [C] ``nb_blocks=[1,1,1,1],
    num_branches=1``; [D] ``num_branches=8``. Every method: AdamW per branch, plain CE, raw final weights evaluated.

    ``use_ema=False`` is the authors' protocol: their ``run.py`` builds an EMA but ``test()`` receives ``None``, so
    the paper's numbers come from the raw final weights. ``use_ema=True`` is the zoo's own option: an EMA over the
    last ``ema_epochs`` epochs is validated, tested and saved."""

    def __init__(
        self,
        num_classes: int = 20,
        layers: list[int] = list(RESNET152_LAYERS),
        planes: list[int] = list(RESNET_PLANES),
        stem: str = "imagenet",
        stem_width: int | None = None,
        source: str = "random",
        nb_blocks: list[int] | None = [1, 1, 1, 1],
        num_branches: int = 1,
        split_stage: int = 3,
        shift: int | None = None,
        slice_seed: int = 0,
        reinit_bn: bool = True,
        slice_mode: str = "per_tensor",
        trainable: Literal["all", "head"] = "all",
        warm_stem_epochs: int = 10,
        use_ema: bool = False,
        ema_epochs: int = 60,
        ema_decay: float | None = None,
        ema_use_num_updates: bool = True,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        label_smoothing: float = 0.0,
        source_trained_from: str | None = None,
    ) -> None:
        local = dict(locals())
        if trainable not in ("all", "head"):
            raise ValueError(f"trainable must be 'all' or 'head', got {trainable!r}")
        net = build_rrrnet(**{k: local[k] for k in NET_ARGS})
        super().__init__(net=net, num_classes=num_classes, optimizer="adamw", lr=lr, weight_decay=weight_decay,
                         scheduler="none", label_smoothing=label_smoothing)
        self.automatic_optimization = False
        self.is_ensemble = isinstance(net, BranchEnsemble)
        if trainable == "head":
            if self.is_ensemble:
                raise ValueError("trainable='head' is method [A] (full network, nb_blocks=None)")
            net.requires_grad_(False)
            net.fc.requires_grad_(True)
        self.num_branches = len(net.branches) if self.is_ensemble else 1
        self.warm_stem_epochs, self.use_ema, self.ema_epochs = warm_stem_epochs, use_ema, ema_epochs
        self.ema_decay = ema_decay if ema_decay is not None else max(ema_epochs - 1, 0) / max(ema_epochs, 1)
        self.ema_use_num_updates = ema_use_num_updates
        self.register_buffer("stem_warmed", torch.zeros((), dtype=torch.bool))
        self._emas: list[ParameterEMA] | None = None
        self._branch_hits: dict[str, torch.Tensor] = {}
        self._seen: dict[str, torch.Tensor] = {}

    # ---- parameter groups: one per branch ------------------------------------------------------
    def branch_parameters(self) -> list[list[nn.Parameter]]:
        if self.is_ensemble:
            return [list(br.parameters()) for br in self.net.branches]
        return [[p for p in self.net.parameters() if p.requires_grad]]

    def configure_optimizers(self):
        lr, wd = self.optim_cfg["lr"], self.optim_cfg["weight_decay"]
        return [torch.optim.AdamW(group, lr=lr, weight_decay=wd) for group in self.branch_parameters()]

    def setup(self, stage: str) -> None:
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        n = getattr(dm, "num_classes", None) if dm is not None else None
        if isinstance(n, int) and n != self.hparams.num_classes:
            raise ValueError(f"the datamodule has {n} classes but model num_classes={self.hparams.num_classes}; "
                             f"set --model.init_args.num_classes {n}")

    # ---- stem BN warm-up (authors' warm_stem_BatchNorm) ----------------------------------------
    @torch.no_grad()
    def warm_stem(self, loader, epochs: int) -> None:
        """Run the frozen stem in train mode over ``loader`` ``epochs`` times (BN running stats only), then eval.

        An "epoch" here is what the trainer calls one (``num_training_batches``): the whole loader by default, and
        only ``limit_train_batches`` batches in a shortened run (``fast_dev_run``, a smoke test)."""
        from lightning.pytorch.utilities import CombinedLoader

        if isinstance(loader, CombinedLoader):
            loader = loader.flattened[0]
        elif isinstance(loader, (list, tuple)):
            loader = loader[0]
        stem = self.net.stem
        stem.train()
        per_epoch = self.trainer.num_training_batches if self._trainer is not None else float("inf")
        for _ in range(epochs):
            for i, batch in enumerate(loader):
                if i >= per_epoch:
                    break
                stem(batch[0].to(self.device))
        stem.eval()
        if self._trainer is not None and self.trainer.world_size > 1:  # every rank saw its shard: average
            for m in stem.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.copy_(self.trainer.strategy.reduce(m.running_mean, reduce_op="mean"))
                    m.running_var.copy_(self.trainer.strategy.reduce(m.running_var, reduce_op="mean"))
        self.stem_warmed.fill_(True)

    def on_train_start(self) -> None:
        if self.is_ensemble and self.warm_stem_epochs > 0 and not bool(self.stem_warmed):
            self.warm_stem(self.trainer.train_dataloader, self.warm_stem_epochs)

    # ---- optional EMA (the zoo's own) over the last ``ema_epochs`` epochs, updated every step ---
    def _ema_active(self) -> bool:
        if not self.use_ema or self.ema_epochs <= 0 or self._trainer is None:
            return False
        return self.current_epoch >= max(0, self._max_epochs() - self.ema_epochs)

    def _ema_step(self) -> None:
        if not self._ema_active():
            return
        if self._emas is None:
            self._emas = [ParameterEMA(g, self.ema_decay, self.ema_use_num_updates) for g in self.branch_parameters()]
        for ema in self._emas:
            ema.update()

    def _swap_in(self) -> None:
        for ema in self._emas or []:
            ema.swap_in()

    def _restore(self) -> None:
        for ema in self._emas or []:
            ema.restore()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """With ``use_ema`` the saved weights are the EMA ones; the source file is not needed to rebuild (weights are in the file)."""
        super().on_save_checkpoint(checkpoint)
        if self._emas:
            names = {id(p): n for n, p in self.named_parameters()}
            for ema in self._emas:
                for p, s in zip(ema.params, ema.shadow):
                    checkpoint["state_dict"][names[id(p)]] = s.detach().clone()
        hp = checkpoint.get("hyper_parameters")
        if hp is not None and hp.get("source", "random") != "random":
            checkpoint["hyper_parameters"] = {**hp, "source": "random", "source_trained_from": hp["source"]}

    def on_train_end(self) -> None:
        if self._emas:  # the averaged weights become the model's for good
            self._swap_in()
            for ema in self._emas:
                ema._backup = None
            self._emas = None

    # ---- steps ---------------------------------------------------------------------------------
    def _branch_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net.branch_logits(x) if self.is_ensemble else [self.net(x)]

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Shared batch, or one batch per branch when the datamodule gives B loaders (the authors' separate passes)."""
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        if isinstance(batch[0], (list, tuple)):
            if not self.is_ensemble or len(batch) != self.num_branches:
                raise ValueError(f"got {len(batch)} train loaders for {self.num_branches} branch(es); set the "
                                 f"datamodule's branch_loaders to {self.num_branches} or 1")
            logits = [br(self.net.forward_features(b[0])) for br, b in zip(self.net.branches, batch)]
            targets = [b[1] for b in batch]
        else:
            logits = self._branch_logits(batch[0])
            targets = [batch[1]] * len(logits)
        losses = [self.loss(lg, t) for lg, t in zip(logits, targets)]
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        # branches share only the frozen stem, so one backward of the sum gives each branch its own CE gradient
        self.manual_backward(torch.stack(losses).sum())
        for opt in opts:
            opt.step()
        self._ema_step()
        loss = torch.stack(losses).mean().detach()
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, sync_dist=True)
        if targets[0] is targets[-1]:  # shared batch: the ensemble's accuracy
            ens = ensemble_log_probs([lg.detach() for lg in logits]) if self.is_ensemble else logits[0].detach()
            self.metrics["train_acc"](ens, targets[0])
        else:  # separate batches: train/acc is the mean single-branch accuracy
            self.metrics["train_acc"](torch.cat([lg.detach() for lg in logits]), torch.cat(targets))
        self._count_branch_hits("train", logits, targets)
        self.log("train/acc", self.metrics["train_acc"], on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def _shared_step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch[0], batch[1]
        logits = self._branch_logits(x)
        out = ensemble_log_probs(logits) if self.is_ensemble else logits[0]
        loss = self.loss(out, y)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        for name in ("acc", "acc_top5"):
            self.metrics[f"{stage}_{name}"](out, y)
            self.log(f"{stage}/{name}", self.metrics[f"{stage}_{name}"], on_step=False, on_epoch=True, prog_bar=name == "acc")
        self._count_branch_hits(stage, logits, [y] * len(logits))
        return loss

    def _count_branch_hits(self, stage: str, logits: list[torch.Tensor], targets: list[torch.Tensor]) -> None:
        hits = torch.stack([(lg.argmax(-1) == t).sum() for lg, t in zip(logits, targets)]).detach().float()
        self._branch_hits[stage] = self._branch_hits.get(stage, torch.zeros_like(hits)) + hits
        self._seen[stage] = self._seen.get(stage, torch.zeros((), device=hits.device)) + targets[0].numel()

    def _log_branch_acc(self, stage: str) -> None:
        if stage not in self._branch_hits:
            return
        hits, seen = self._branch_hits.pop(stage), self._seen.pop(stage)
        if self._trainer is not None and self.trainer.world_size > 1:
            hits = self.trainer.strategy.reduce(hits, reduce_op="sum")
            seen = self.trainer.strategy.reduce(seen, reduce_op="sum")
        acc = hits / seen.clamp_min(1)
        for i, a in enumerate(acc):
            self.log(f"{stage}/acc_branch{i}", a, sync_dist=False)
        self.log(f"{stage}/acc_branch_mean", acc.mean(), sync_dist=False)

    def on_train_epoch_end(self) -> None:
        self._log_branch_acc("train")

    def on_validation_epoch_start(self) -> None:
        self._branch_hits.pop("val", None), self._seen.pop("val", None)
        self._swap_in()

    def on_validation_epoch_end(self) -> None:
        self._log_branch_acc("val")
        self._restore()

    def on_test_epoch_start(self) -> None:
        self._branch_hits.pop("test", None), self._seen.pop("test", None)
        self._swap_in()

    def on_test_epoch_end(self) -> None:
        self._log_branch_acc("test")
        self._restore()

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self(x).softmax(-1)  # = mean of the branches' softmax probabilities
