"""``BilevelSearchModule``: DARTS's alternating bilevel search under Lightning manual optimisation.

Each step takes ``{"train": (x, y), "val": (x, y)}`` (the two halves of the training set): an alpha step
(Adam) with the first- or second-order hypergradient, then a weight step (SGD, grad-norm clip).
"""
from __future__ import annotations

from typing import Any, Literal, Sequence

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from zoo.core.optim import planned_epochs
from zoo.nas.derive import darts_top2, nested_genotype
from zoo.nas.genotype import AnyGenotype
from zoo.nas.mixed import mixing_weights
from zoo.nas.ops import DARTS_PRIMITIVES
from zoo.nas.search_net import SearchNetwork
from zoo.nas.unrolled import unrolled_arch_grads


def unpack_search_batch(batch: Any) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """(train, val) pairs from a CombinedLoader dict (Lightning may also hand back a (dict, idx, idx) tuple)."""
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], dict):
        batch = batch[0]
    if not isinstance(batch, dict) or "train" not in batch or "val" not in batch:
        raise ValueError("a search step needs {'train': (x, y), 'val': (x, y)}; wrap the data in "
                         "zoo.nas.data.SearchSplitDataModule")
    return tuple(batch["train"][:2]), tuple(batch["val"][:2])  # type: ignore[return-value]


class BilevelSearchModule(pl.LightningModule):
    """DARTS search (Liu et al., 2019): supernet weights on one half of the data, alphas on the other.

    First order by default; ``unrolled=True`` is the second-order step with momentum and weight decay as in
    the reference code. ``partial_channels``/``edge_norm`` give PC-DARTS, ``weight_fn="gumbel"`` GDAS-style
    sampling, ``weight_fn="sigmoid"`` with ``zero_one_weight`` FairDARTS.
    """

    def __init__(
        self, num_classes: int = 10, in_chans: int = 3, C: int = 16, layers: int = 8, steps: int = 4,
        multiplier: int | None = None, stem_multiplier: int = 3, primitives: Sequence[str] = DARTS_PRIMITIVES,
        weight_fn: Literal["softmax", "sigmoid", "gumbel"] = "softmax", partial_channels: int = 1,
        edge_norm: bool = False, reductions: list[int] | None = None, alpha_init: float = 1e-3,
        lr: float = 0.025, lr_min: float = 0.001, momentum: float = 0.9, weight_decay: float = 3e-4,
        grad_clip: float = 5.0, arch_lr: float = 3e-4, arch_betas: Sequence[float] = (0.5, 0.999),
        arch_weight_decay: float = 1e-3, unrolled: bool = False, arch_warmup_epochs: int = 0,
        tau_max: float = 10.0, tau_min: float = 0.1, zero_one_weight: float = 0.0,
        derivation: str = "darts_top2", threshold: float = 0.85,
        mean: Sequence[float] = (0.4914, 0.4822, 0.4465), std: Sequence[float] = (0.2470, 0.2435, 0.2616),
        per_cell_alpha: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        # kept as attributes: under LightningCLI a subclass's hparams hold only its own arguments
        self.weight_fn, self.per_cell_alpha, self.unrolled = weight_fn, per_cell_alpha, unrolled
        self.arch_warmup_epochs, self.tau_range = arch_warmup_epochs, (tau_max, tau_min)
        self.net = SearchNetwork(C, num_classes, layers, steps, multiplier, stem_multiplier, list(primitives),
                                 weight_fn, per_cell_alpha, partial_channels, edge_norm, reductions, in_chans,
                                 alpha_init, list(mean), list(std))
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    # ---- architecture ------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def arch_parameters(self) -> list[torch.nn.Parameter]:
        return self.net.arch_parameters()

    def weight_parameters(self) -> list[torch.nn.Parameter]:
        return self.net.weight_parameters()

    def cell_mixing_weights(self) -> list[torch.Tensor]:
        """Deterministic mixing weights per cell (softmax/sigmoid of alpha; Gumbel reads as softmax), x softmax(beta)."""
        fn = "softmax" if self.weight_fn == "gumbel" else self.weight_fn
        out = []
        for i in range(len(self.net.cells)):
            w = mixing_weights(self.net.cell_alpha(i).detach(), fn)
            beta = self.net.cell_beta(i)
            out.append(w * self.net.edge_weights(beta.detach()).unsqueeze(1) if beta is not None else w)
        return out

    def unique_mixing_weights(self) -> list[torch.Tensor]:
        """One weight matrix per architecture parameter: [normal, reduce] when shared, one per cell otherwise."""
        ws = self.cell_mixing_weights()
        if self.per_cell_alpha:
            return ws
        normal = next(i for i in range(len(ws)) if i not in self.net.reductions)
        return [ws[normal], ws[self.net.reductions[0]]]

    def genotype(self) -> AnyGenotype:
        """The discrete architecture under the module's derivation rule."""
        hp, ws = self.hparams, self.cell_mixing_weights()
        if hp.derivation == "darts_top2" and not self.per_cell_alpha:
            normal = next(i for i in range(len(ws)) if i not in self.net.reductions)
            return darts_top2(ws[normal], ws[self.net.reductions[0]], self.net.primitives)
        rule = "darts" if hp.derivation == "darts_top2" else hp.derivation
        return nested_genotype(ws, self.net.primitives, self.net.reductions, rule, hp.threshold)

    # ---- losses ------------------------------------------------------------------------------
    def criterion(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y)

    def arch_regulariser(self) -> torch.Tensor:
        """FairDARTS zero-one loss w01 * L01 summed over the alpha matrices (0 when ``zero_one_weight`` is 0)."""
        from zoo.nas.ddarts.losses import zero_one_loss

        if not self.hparams.zero_one_weight:
            return torch.zeros((), device=self.device)
        alphas = [p for p in self.arch_parameters() if p.dim() == 2]
        return self.hparams.zero_one_weight * sum(zero_one_loss(a) for a in alphas)

    # ---- steps -------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        if self.weight_fn == "gumbel":  # GDAS: tau decays linearly from tau_max to tau_min over the search
            frac = self.current_epoch / max(1, (self.trainer.max_epochs or 1) - 1)
            self.net.tau = self.tau_range[0] - (self.tau_range[0] - self.tau_range[1]) * frac

    def arch_step(self, train: tuple, val: tuple) -> None:
        opt_w, opt_a = self.optimizers()[:2]
        opt_a.zero_grad()
        if self.unrolled:
            self._unrolled_backward(train, val, opt_w)
        else:
            x, y = val
            loss = self.criterion(self.net(x), y) + self.arch_regulariser()
            self.manual_backward(loss)
            self.log("search/arch_loss", loss.detach(), on_step=False, on_epoch=True, sync_dist=True)
        opt_a.step()

    def _unrolled_backward(self, train: tuple, val: tuple, opt_w) -> None:
        named = dict(self.net.named_parameters())
        arch_ids = {id(p) for p in self.arch_parameters()}
        weight_names = [n for n, p in named.items() if id(p) not in arch_ids]
        arch_names = [n for n, p in named.items() if id(p) in arch_ids]
        group = opt_w.param_groups[0]
        state = opt_w.optimizer.state if hasattr(opt_w, "optimizer") else opt_w.state
        buffers = [state.get(named[n], {}).get("momentum_buffer") for n in weight_names]
        grads, val_loss = unrolled_arch_grads(
            self.net, weight_names, arch_names, train, val, self.criterion, xi=group["lr"],
            momentum=group.get("momentum", 0.0), weight_decay=group.get("weight_decay", 0.0), momentum_buffers=buffers)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world = torch.distributed.get_world_size()  # hand-made gradients bypass DDP's all-reduce
            for g in grads:
                torch.distributed.all_reduce(g)
                g.div_(world)
        reg = self.arch_regulariser()
        if reg.requires_grad:
            self.manual_backward(reg)
        for n, g in zip(arch_names, grads):
            p = named[n]
            p.grad = g if p.grad is None else p.grad + g
        self.log("search/arch_loss", val_loss, on_step=False, on_epoch=True, sync_dist=True)

    def weight_step(self, train: tuple) -> torch.Tensor:
        opt_w = self.optimizers()[0]
        opt_w.zero_grad()
        x, y = train
        logits = self.net(x)
        loss = self.criterion(logits, y)
        self.manual_backward(loss)
        self.clip_gradients(opt_w, gradient_clip_val=self.hparams.grad_clip, gradient_clip_algorithm="norm")
        opt_w.step()
        self.log("train/loss", loss.detach(), on_step=True, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("train/acc", (logits.argmax(1) == y).float().mean(), on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        train, val = unpack_search_batch(batch)
        if self.current_epoch >= self.arch_warmup_epochs:
            self.arch_step(train, val)
        return self.weight_step(train).detach()

    def on_train_epoch_end(self) -> None:
        for sched in self._schedulers():
            sched.step()

    def _schedulers(self) -> list:
        s = self.lr_schedulers()
        return [] if s is None else (list(s) if isinstance(s, (list, tuple)) else [s])

    def _eval_step(self, batch: Any, stage: str) -> None:
        x, y = batch[0], batch[1]
        logits = self.net(x)
        self.log(f"{stage}/loss", self.criterion(logits, y), on_epoch=True, prog_bar=True, sync_dist=True)
        metric = self.val_acc if stage == "val" else self.test_acc
        metric(logits, y)
        self.log(f"{stage}/acc", metric, on_epoch=True, prog_bar=True)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    # ---- optimisers --------------------------------------------------------------------------
    def _max_epochs(self) -> int:
        return planned_epochs(self, default=50)

    def configure_optimizers(self):
        hp = self.hparams
        opt_w = torch.optim.SGD(self.weight_parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        opt_a = torch.optim.Adam(self.arch_parameters(), lr=hp.arch_lr, betas=tuple(hp.arch_betas),
                                 weight_decay=hp.arch_weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt_w, T_max=self._max_epochs(), eta_min=hp.lr_min)
        return [opt_w, opt_a], [sched]
