"""``ArchitectureDerivation``: each epoch of a differentiable architecture search, derive and record the genotype.

Works with any module exposing ``genotype()`` and ``cell_mixing_weights()`` (``zoo.nas`` search modules;
``unique_mixing_weights()`` when present, so shared alphas are counted once).
Logs weight entropy, max weight and per-op mean weights, a genotype graph image, and writes
``genotype_epoch{N}.json`` (rank zero); at fit end writes ``genotype.json`` and optionally builds the
discrete (and deepened) evaluation network.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_only


def weight_stats(weights: list[torch.Tensor], primitives: list[str]) -> dict[str, float]:
    """Mean per-edge entropy of the normalised op weights, mean max weight and per-op mean weight."""
    w = torch.cat([x.detach().float().cpu() for x in weights])
    p = w / w.sum(-1, keepdim=True).clamp_min(1e-12)
    stats = {
        "arch/entropy": float(-(p * p.clamp_min(1e-12).log()).sum(-1).mean()),
        "arch/entropy_uniform": math.log(w.shape[-1]),
        "arch/max_weight": float(w.max(-1).values.mean()),
    }
    stats.update({f"arch/mean_weight/{op}": float(w[:, k].mean()) for k, op in enumerate(primitives)})
    return stats


def genotype_figure(genotype: Any):
    """A matplotlib figure of the genotype's cells (nodes on a line, one arc per kept op), or None without matplotlib."""
    try:  # a bare Figure (no pyplot): works headless and leaves the user's backend alone
        from matplotlib.figure import Figure
        from matplotlib.patches import FancyArrowPatch
    except ImportError:
        return None
    from zoo.nas.genotype import CellGenotype, cell_edges

    cells = cell_edges(genotype)
    names = (["normal", "reduce"] if isinstance(genotype, CellGenotype)
             else [f"cell {c}{' (red.)' if c in genotype.reductions else ''}" for c in range(len(cells))])
    fig = Figure(figsize=(7, 1.8 * len(cells)))
    axes = fig.subplots(len(cells), 1, squeeze=False)
    for ax, name, edges in zip(axes[:, 0], names, cells):
        n = max([t for _, t, _ in edges] + [1]) + 1
        for k in range(n):
            ax.scatter([k], [0], s=300, c="tab:blue" if k < 2 else "tab:orange", zorder=3)
            ax.text(k, 0, str(k), ha="center", va="center", color="white", fontsize=8, zorder=4)
        for j, (op, to, frm) in enumerate(edges):
            rad = 0.2 if j % 2 else -0.2
            ax.add_patch(FancyArrowPatch((frm, 0), (to, 0), connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                         mutation_scale=8, lw=0.8))
            ax.text((frm + to) / 2, -0.9 * (to - frm) * rad / 0.2 / max(n - 1, 1), op, fontsize=6, ha="center")
        ax.set_xlim(-0.5, n - 0.5)
        ax.set_ylim(-2.2, 2.2)
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


class ArchitectureDerivation(pl.Callback):
    """Derive, log and save the genotype every epoch; optionally build the evaluation network at fit end.

    Files go to ``out_dir`` (default ``<trainer.default_root_dir>/genotypes``).

    ``build_network=True`` instantiates ``zoo.nas.cells.DartsNetwork`` with ``eval_C`` channels and
    ``eval_layers`` layers (for D-DARTS genotypes deeper than the search: the deepened network).
    """

    def __init__(self, out_dir: str | None = None, log_image: bool = True, build_network: bool = False,
                 eval_C: int = 36, eval_layers: int | None = None, num_classes: int | None = None,
                 reference_layout: bool = False) -> None:
        super().__init__()
        self.out_dir = out_dir
        self.log_image, self.build_network = log_image, build_network
        self.eval_C, self.eval_layers, self.num_classes = eval_C, eval_layers, num_classes
        self.reference_layout = reference_layout
        self.history: list[dict[str, Any]] = []
        self.network: torch.nn.Module | None = None

    def directory(self, trainer: pl.Trainer) -> Path:
        if self.out_dir is not None:
            return Path(self.out_dir)
        return Path(trainer.default_root_dir) / "genotypes"

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        genotype = pl_module.genotype()
        weights = getattr(pl_module, "unique_mixing_weights", pl_module.cell_mixing_weights)()
        stats = weight_stats(weights, list(pl_module.net.primitives))
        for key, value in stats.items():
            pl_module.log(key, value, on_step=False, on_epoch=True, sync_dist=False, rank_zero_only=True)
        self.history.append({"epoch": trainer.current_epoch, "genotype": genotype.to_dict(), **stats})
        self._write(trainer, genotype, f"genotype_epoch{trainer.current_epoch}.json", stats)

    @rank_zero_only
    def _write(self, trainer: pl.Trainer, genotype: Any, name: str, stats: dict[str, float] | None = None) -> None:
        from zoo.nas.genotype import save_genotype

        out = self.directory(trainer)
        save_genotype(genotype, out / name)
        if not self.log_image:
            return
        fig = genotype_figure(genotype)
        if fig is None:
            return
        png = out / name.replace(".json", ".png")
        fig.savefig(png, dpi=80)
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):  # WandbLogger
                logger.log_image(key="arch/genotype", images=[str(png)], step=trainer.global_step)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        genotype = pl_module.genotype()
        self._write(trainer, genotype, "genotype.json")
        self._write_history(trainer)
        if self.build_network:
            from zoo.nas.cells import DartsNetwork

            hp = pl_module.hparams
            layers = self.eval_layers or hp.get("layers", 8)
            self.network = DartsNetwork(genotype, C=self.eval_C, layers=layers,
                                        num_classes=self.num_classes or hp.get("num_classes", 10),
                                        in_chans=hp.get("in_chans", 3), reference_layout=self.reference_layout,
                                        mean=hp.get("mean"), std=hp.get("std"))

    @rank_zero_only
    def _write_history(self, trainer: pl.Trainer) -> None:
        out = self.directory(trainer)
        out.mkdir(parents=True, exist_ok=True)
        (out / "history.json").write_text(json.dumps(self.history, indent=1))
