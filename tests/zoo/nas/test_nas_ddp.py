"""Search modules under DDP (2 CPU processes, gloo): ranks see different data yet keep identical alphas and weights."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import run_ddp_script

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = '''
import sys, torch, lightning.pytorch as pl
sys.path.insert(0, {root!r})
from zoo.nas.search import BilevelSearchModule
from zoo.nas.ddarts.search import DDartsSearchModule
from zoo.nas.data import DigitsNASDataModule

class Dump(pl.Callback):
    first = None
    def on_train_start(self, trainer, m):
        self.a0 = [p.detach().clone() for p in m.arch_parameters()]
    def on_train_batch_start(self, trainer, m, batch, batch_idx):
        if batch_idx == 0:
            b = batch[0] if isinstance(batch, tuple) else batch
            self.first = b["train"][1][:8].tolist()
    def on_train_end(self, trainer, m):
        torch.save({{"a": [p.detach() for p in m.arch_parameters()], "w": [p.detach() for p in m.weight_parameters()],
                    "first": self.first, "a0": self.a0}}, {out!r} + f"/rank{{trainer.global_rank}}.pt")

if __name__ == "__main__":
    pl.seed_everything(0)
    kind = {kind!r}
    prims = ["skip_connect", "sep_conv_3x3"]
    if kind == "ddarts":
        m = DDartsSearchModule(C=4, layers=3, steps=2, reductions=[1, 2], primitives=prims, arch_lr=0.03)
    else:
        m = BilevelSearchModule(C=4, layers=3, steps=2, reductions=[1, 2], primitives=prims, arch_lr=0.03,
                                unrolled=kind == "second_order")
    t = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, limit_train_batches=3,
                   limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   callbacks=[Dump()])
    t.fit(m, DigitsNASDataModule(batch_size=32))
'''


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", ["first_order", "second_order", "ddarts"])
def test_ddp_ranks_stay_in_sync(kind, tmp_path):
    run_ddp_script(SCRIPT.format(root=str(ROOT), out=str(tmp_path), kind=kind), tmp_path, timeout=500)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["first"] != r1["first"]  # each rank trains on its own shard
    for x, y in zip(r0["a"] + r0["w"], r1["a"] + r1["w"]):
        torch.testing.assert_close(x, y)
    assert all(float((a - a0).abs().max()) > 1e-3 for a, a0 in zip(r0["a"], r0["a0"]))  # the alphas did move
