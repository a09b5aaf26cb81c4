"""Shared pieces of the DARTS / D-DARTS small-scale faithful checks (spec section 9 of both specs)."""
from __future__ import annotations

import random

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from zoo.nas.cells import DartsNetwork
from zoo.nas.data import DigitsNASDataModule
from zoo.nas.genotype import CellGenotype, NestedGenotype

DARTS6 = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_3x3"]
FREE = ["max_pool_3x3", "avg_pool_3x3", "skip_connect"]
NORM = dict(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])


def search(module: pl.LightningModule, epochs: int = 10, seed: int = 0) -> DigitsNASDataModule:
    pl.seed_everything(seed, verbose=False)
    dm = DigitsNASDataModule(batch_size=64, search=True, corrupted=True)
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, dm)
    return dm


def pool_loss(net, dm) -> float:
    net.eval()
    x, y = dm.data["pool"].tensors
    with torch.no_grad():
        return float(F.cross_entropy(net(x), y))


def train_discrete(genotype, layers: int, seed: int, epochs: int = 15, C: int = 8, losses: list | None = None) -> float:
    """Train the discrete net on the 1300-image pool for ``epochs``; test accuracy on the 497 held-out images."""
    torch.manual_seed(seed)
    dm = DigitsNASDataModule(batch_size=64, search=False, corrupted=True)
    dm.setup()
    net = DartsNetwork(genotype, C=C, num_classes=10, layers=layers, **NORM)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=3e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    if losses is not None:
        losses.append(pool_loss(net, dm))
    loader = torch.utils.data.DataLoader(dm.data["pool"], batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    for _ in range(epochs):
        net.train()
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
        sched.step()
    if losses is not None:
        losses.append(pool_loss(net, dm))
    net.eval()
    x, y = dm.data["test"].tensors
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def random_cell(ops: list[str], steps: int, rng: random.Random) -> list[tuple[str, int]]:
    pairs = []
    for j in range(steps):
        for i in rng.sample(range(2 + j), 2):
            pairs.append((rng.choice(ops), i))
    return pairs


def random_darts(ops: list[str], steps: int, seed: int) -> CellGenotype:
    rng = random.Random(seed)
    concat = list(range(2, 2 + steps))
    return CellGenotype(random_cell(ops, steps, rng), random_cell(ops, steps, rng), concat, concat)


def random_nested(ops: list[str], steps: int, cells: int, reductions: list[int], seed: int) -> NestedGenotype:
    rng = random.Random(seed)
    genes = [[(op, 2 + k // 2, i) for k, (op, i) in enumerate(random_cell(ops, steps, rng))] for _ in range(cells)]
    return NestedGenotype(genes, reductions, list(range(2, 2 + steps)))


def mean_entropy(weights: torch.Tensor) -> float:
    return float(-(weights * weights.clamp_min(1e-12).log()).sum(-1).mean())
