"""``NASiamSearchModule``: first-order bilevel search of NASiam heads on the framework's own SSL loss
(Heuillet et al., arXiv 2302.00059), built on ``zoo.nas.BilevelSearchModule``'s manual-optimisation loop.

Per weight step one alpha step on a batch of the alpha half (``arch_every="step"``; the SimCLR code's one
alpha step per epoch is ``arch_every="epoch"``), then one weight step. Logs per-layer operation weights as
a heat map over epochs and the derived head as a diagram (W&B), and per-layer entropies as scalars.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from zoo.nas.search import BilevelSearchModule, unpack_search_batch
from zoo.nasiam.heads import HeadGenotype, head_figure
from zoo.nasiam.module import SSLMixin, ssl_optimizers


class NASiamSearchModule(SSLMixin, BilevelSearchModule):
    """Search the projector C_e (and SimSiam predictor C_p) chains; alpha (layers x 7) are parameters initialised to 0.

    ``BilevelSearchModule.__init__`` builds a DARTS supernet, so this module initialises the LightningModule itself
    and reuses the parent's loop pieces (batch unpacking, per-epoch scheduler stepping).
    Spec recipes: SimSiam alpha AdamW lr 1e-3 wd 1e-3; MoCo Adam 3e-4 wd 1e-3; SimCLR Adam 1e-3.
    """

    def __init__(
        self, framework: str = "simsiam", backbone: str = "resnet18", in_chans: int = 3, cifar_stem: bool = True,
        mean: Sequence[float] = (0.4914, 0.4822, 0.4465), std: Sequence[float] = (0.2470, 0.2435, 0.2616),
        width: int = 32, dim: int = 2048, pred_dim: int = 512, hidden_dim: int = 512, proj_layers: int = 6,
        pred_layers: int = 4, queue_size: int = 4096, key_momentum: float = 0.999, temperature: float = 0.1,
        primitives: Sequence[str] | None = None, views: str = "cifar", view_size: int | None = None,
        optimizer: str = "sgd", lr: float = 0.12, momentum: float = 0.9, weight_decay: float = 5e-4,
        fix_pred_lr: bool = True, scheduler: str = "cosine", milestones: list[int] | None = None, arch_optimizer: str = "adamw", arch_lr: float = 1e-3,
        arch_betas: Sequence[float] = (0.9, 0.999), arch_weight_decay: float = 1e-3, arch_every: str = "step",
        arch_warmup_epochs: int = 0,
    ) -> None:
        super(BilevelSearchModule, self).__init__()  # skips BilevelSearchModule.__init__: it builds a DARTS supernet
        _ = __class__  # the __class__ cell lets save_hyperparameters find this __init__'s arguments
        self.save_hyperparameters()
        if arch_every not in ("step", "epoch"):
            raise ValueError(f"arch_every must be 'step' or 'epoch', got {arch_every!r}")
        self.automatic_optimization = False
        self.weight_fn, self.per_cell_alpha, self.unrolled = "softmax", False, False
        self.arch_warmup_epochs, self.tau_range = arch_warmup_epochs, (1.0, 1.0)
        hp = dict(self.hparams, head="search", standard_layers=2)
        self._build_net(hp)
        self.weight_history: list[dict[str, list[list[float]]]] = []

    # ---- architecture ------------------------------------------------------------------------------------------
    def arch_parameters(self) -> list[torch.nn.Parameter]:
        return self.net.arch_parameters()

    def weight_parameters(self) -> list[torch.nn.Parameter]:
        return self.net.weight_parameters()

    def cell_mixing_weights(self) -> list[torch.Tensor]:
        """softmax(alpha) of each searched chain (projector first), rows = layers."""
        return [c.mixing_weights().detach() for c in self.net.search_chains().values()]

    def unique_mixing_weights(self) -> list[torch.Tensor]:
        return self.cell_mixing_weights()

    def genotype(self) -> HeadGenotype:
        """Argmax per layer of each chain."""
        return self.net.genotype()

    # ---- steps -------------------------------------------------------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        train, val = unpack_search_batch(batch)
        arch_now = self.hparams.arch_every == "step" or batch_idx == 0
        if self.current_epoch >= self.arch_warmup_epochs and arch_now:
            self.arch_step(train, val)
        return self.weight_step(train).detach()

    def arch_step(self, train: tuple, val: tuple) -> None:
        """First-order alpha step on the alpha half with the framework's loss (MoCo: also momentum + enqueue)."""
        opt_w, opt_a = self.optimizers()[:2]
        opt_a.zero_grad()
        x1, x2 = self.views_of(val)
        loss, _ = self.net.ssl_loss(x1, x2)
        self.manual_backward(loss)
        opt_a.step()
        opt_w.zero_grad()  # the alpha loss also reached the weights; they are stepped on their own half only
        self.log("search/arch_loss", loss.detach(), on_step=False, on_epoch=True, sync_dist=True)

    def weight_step(self, train: tuple) -> torch.Tensor:
        opt_w, opt_a = self.optimizers()[:2]
        opt_w.zero_grad()
        x1, x2 = self.views_of(train)
        loss, z = self.net.ssl_loss(x1, x2)
        self.manual_backward(loss)
        opt_w.step()
        opt_a.zero_grad()
        self._log_train(loss, z)
        return loss

    def configure_optimizers(self):
        hp = self.hparams
        out = ssl_optimizers(self, self.weight_parameters(), hp)
        opt_w, scheds = (out["optimizer"], [out["lr_scheduler"]["scheduler"]]) if isinstance(out, dict) else (out, [])
        cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}.get(hp.arch_optimizer)
        if cls is None:
            raise ValueError(f"unknown arch_optimizer {hp.arch_optimizer!r}; expected adamw or adam")
        opt_a = cls(self.arch_parameters(), lr=hp.arch_lr, betas=tuple(hp.arch_betas), weight_decay=hp.arch_weight_decay)
        return [opt_w, opt_a], scheds

    # ---- logging -----------------------------------------------------------------------------------------------
    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        chains = self.net.search_chains()
        record = {name: c.mixing_weights().detach().cpu().tolist() for name, c in chains.items()}
        self.weight_history.append(record)
        for name, w in record.items():
            for i, row in enumerate(w):
                ent = -sum(p * math.log(max(p, 1e-12)) for p in row)
                self.log(f"arch/{name}/entropy_l{i}", ent, on_step=False, on_epoch=True, rank_zero_only=True)
        self._log_figures()

    def _log_figures(self) -> None:
        loggers = [lg for lg in self.loggers if hasattr(lg, "log_image")]
        if not loggers or self.global_rank != 0:
            return
        import numpy as np
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        images = {"arch/op_weights_heatmap": weight_heatmap(self.weight_history, self.net.primitives),
                  "arch/derived_head": head_figure(self.genotype(), self.net.dims)}
        for key, fig in images.items():
            canvas = FigureCanvasAgg(fig)
            canvas.draw()
            img = np.asarray(canvas.buffer_rgba())[..., :3].copy()
            for lg in loggers:
                lg.log_image(key=key, images=[img], step=self.global_step)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["nasiam_weight_history"] = self.weight_history

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.weight_history = list(checkpoint.get("nasiam_weight_history", []))


def weight_heatmap(history: list[dict[str, list[list[float]]]], primitives: Sequence[str]):
    """One heat map per searched layer: operations (rows) x epochs (columns) of softmax(alpha)."""
    from matplotlib.figure import Figure
    import numpy as np

    layers = [(name, i) for name, w in history[-1].items() for i in range(len(w))]
    fig = Figure(figsize=(2.2 * len(layers) + 1, 2.6))
    axes = fig.subplots(1, len(layers), squeeze=False)[0]
    for j, (ax, (name, i)) in enumerate(zip(axes, layers)):
        data = np.array([h[name][i] for h in history]).T
        im = ax.imshow(data, aspect="auto", cmap="viridis", vmin=0.0, vmax=max(0.3, float(data.max())))
        ax.set_title(f"{name[:4]} l{i}", fontsize=7)
        ax.set_xlabel("epoch", fontsize=6)
        ax.set_yticks(range(len(primitives)))
        ax.set_yticklabels([p.replace("linear_", "") for p in primitives] if j == 0 else [], fontsize=6)
        ax.tick_params(labelsize=6)
    fig.colorbar(im, ax=list(axes), fraction=0.02)
    return fig
