"""``DDartsSearchModule``: D-DARTS search (Heuillet et al., 2021) with one alpha, Adam and cosine schedule per cell.

Sigmoid mixing without ``none``, zero-one loss, optional (gradient-free, as in the reference) ablation loss,
threshold derivation. Clean gradient bookkeeping by default; ``reference_quirks=True`` reproduces the
reference code's leaked gradients (spec section 3 a-b).
"""
from __future__ import annotations

from typing import Any, Literal, Sequence

import torch

from zoo.nas.ddarts.losses import ablation_loss, marginal_contributions, stacked_zero_one_loss, zero_one_loss
from zoo.nas.ops import FAIR_PRIMITIVES
from zoo.nas.search import BilevelSearchModule, unpack_search_batch


class DDartsSearchModule(BilevelSearchModule):
    """Per-cell ("distributed") architecture search; every cell c owns alpha_c (edges x 7) initialised to 0."""

    def __init__(
        self, num_classes: int = 10, in_chans: int = 3, C: int = 16, layers: int = 8, steps: int = 4,
        multiplier: int | None = None, stem_multiplier: int = 3, primitives: Sequence[str] = FAIR_PRIMITIVES,
        reductions: list[int] | None = None, lr: float = 0.005, lr_min: float = 0.001, momentum: float = 0.9,
        weight_decay: float = 3e-4, grad_clip: float = 5.0, arch_lr: float = 3e-3, arch_lr_min: float = 1e-3,
        arch_betas: Sequence[float] = (0.9, 0.999), arch_weight_decay: float = 1e-3, zero_one_weight: float = 9.0,
        ablation: bool = False, ablation_weight: float = 0.7, reference_quirks: bool = False,
        derivation: Literal["threshold_sparse", "threshold_edge", "threshold_complete", "darts_top2"] = "threshold_sparse",
        threshold: float = 0.85, mean: Sequence[float] = (0.4914, 0.4822, 0.4465),
        std: Sequence[float] = (0.2470, 0.2435, 0.2616),
    ) -> None:
        super().__init__(
            num_classes=num_classes, in_chans=in_chans, C=C, layers=layers, steps=steps, multiplier=multiplier,
            stem_multiplier=stem_multiplier, primitives=primitives, weight_fn="sigmoid", reductions=reductions,
            alpha_init=0.0, lr=lr, lr_min=lr_min, momentum=momentum, weight_decay=weight_decay, grad_clip=grad_clip,
            arch_lr=arch_lr, arch_betas=arch_betas, arch_weight_decay=arch_weight_decay, unrolled=False,
            zero_one_weight=zero_one_weight, derivation=derivation, threshold=threshold, mean=mean, std=std,
            per_cell_alpha=True,
        )  # the base's save_hyperparameters() records this __init__'s arguments too

    def configure_optimizers(self):
        hp = self.hparams
        opt_w = torch.optim.SGD(self.weight_parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        opts, scheds = [opt_w], [torch.optim.lr_scheduler.CosineAnnealingLR(opt_w, self._max_epochs(), hp.lr_min)]
        for alpha in self.net.alphas:
            opt = torch.optim.Adam([alpha], lr=hp.arch_lr, betas=tuple(hp.arch_betas), weight_decay=hp.arch_weight_decay)
            opts.append(opt)
            scheds.append(torch.optim.lr_scheduler.CosineAnnealingLR(opt, self._max_epochs(), hp.arch_lr_min))
        return opts, scheds

    def _ablation_terms(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not self.hparams.ablation:
            return torch.zeros(len(self.net.cells), device=x.device)
        mc = marginal_contributions(self.net, x, y, self.criterion)
        return self.hparams.ablation_weight * ablation_loss(mc)  # a constant: no gradient, as in the reference

    def _backward(self, loss: torch.Tensor, retain_graph: bool = False) -> None:
        if self._trainer is None:  # used outside a Trainer (tests, notebooks)
            loss.backward(retain_graph=retain_graph)
        else:
            self.manual_backward(loss, retain_graph=retain_graph)

    def alpha_phase(self, xv: torch.Tensor, yv: torch.Tensor, weight_opt, cell_opts: list, abl: torch.Tensor) -> torch.Tensor:
        """One alpha step of every cell on the alpha-half batch; returns the (logged) architecture loss."""
        hp, alphas = self.hparams, list(self.net.alphas)
        if not hp.reference_quirks:
            # clean: one backward of CE + w01 * sum_c L01(alpha_c); each cell's Adam steps its own alpha_c
            for opt in (weight_opt, *cell_opts):
                opt.zero_grad()
            ce = self.criterion(self.net(xv), yv)
            loss = ce + hp.zero_one_weight * sum(zero_one_loss(a) for a in alphas)
            self._backward(loss)
            for opt in cell_opts:
                opt.step()
            weight_opt.zero_grad()
            return loss.detach()
        # reference: per-cell backward of L_c on a shared graph; only cell c's grads are cleared after its step,
        # weight grads are not cleared before the weight step (spec section 3 a-b)
        ce = self.criterion(self.net(xv), yv)
        for c, opt in enumerate(cell_opts):
            loss_c = ce + hp.zero_one_weight * zero_one_loss(alphas[c]) + abl[c]
            self._backward(loss_c, retain_graph=c < len(cell_opts) - 1)
            opt.step()
            opt.zero_grad()
        return ce.detach()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        (xt, yt), (xv, yv) = unpack_search_batch(batch)
        opt_w, *cell_opts = self.optimizers()
        hp = self.hparams
        abl = self._ablation_terms(xv, yv)
        loss = self.alpha_phase(xv, yv, opt_w, cell_opts, abl)
        self.log("search/arch_loss", loss.detach() + abl.mean(), on_step=False, on_epoch=True, sync_dist=True)
        if hp.ablation:
            self.log("search/ablation_loss", abl.mean(), on_step=False, on_epoch=True, sync_dist=True)
        logits = self.net(xt)
        loss_w = self.weight_loss(logits, yt)
        self.manual_backward(loss_w)
        self.clip_gradients(opt_w, gradient_clip_val=hp.grad_clip, gradient_clip_algorithm="norm")
        opt_w.step()
        opt_w.zero_grad()
        if not hp.reference_quirks:
            for opt in cell_opts:
                opt.zero_grad()
        self.log("train/loss", loss_w.detach(), on_step=True, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("train/acc", (logits.argmax(1) == yt).float().mean(), on_step=False, on_epoch=True, sync_dist=True)
        return loss_w.detach()

    def weight_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Weight-step loss CE(train) + w01 * L01 over the stacked alphas of all cells, one mean as in the reference
        ``train_search.py``; no gradient reaches the weights through L01, but under ``reference_quirks`` its alpha
        gradient is left in place for the next alpha step, so the mean (not a per-cell sum) matters."""
        return self.criterion(logits, y) + self.hparams.zero_one_weight * stacked_zero_one_loss(list(self.net.alphas))

    def bimodal_fraction(self, margin: float = 0.15) -> float:
        """Share of sigmoid(alpha) below ``margin`` or above 1 - ``margin`` (the zero-one loss's target)."""
        s = torch.cat([torch.sigmoid(a.detach()).flatten() for a in self.net.alphas])
        return float(((s < margin) | (s > 1 - margin)).float().mean())
