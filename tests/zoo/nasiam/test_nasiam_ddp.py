"""NASiam MoCo search under DDP (2 CPU processes, gloo): ranks train on different shards yet keep identical alphas,
weights and key queues (keys are all-gathered), and the kNN monitor reports one global accuracy."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import run_ddp_script

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = '''
import sys, torch, lightning.pytorch as pl
sys.path.insert(0, {root!r})
from callbacks.knn_monitor import KNNMonitor
from zoo.nas.data import DigitsNASDataModule
from zoo.nasiam.search import NASiamSearchModule

class Dump(pl.Callback):
    first = None
    def on_train_batch_start(self, trainer, m, batch, batch_idx):
        if batch_idx == 0:
            b = batch[0] if isinstance(batch, tuple) else batch
            self.first = b["train"][1][:8].tolist()
    def on_train_end(self, trainer, m):
        torch.save({{"a": [p.detach() for p in m.arch_parameters()], "w": [p.detach() for p in m.weight_parameters()],
                    "queue": m.net.queue.clone(), "ptr": int(m.net.queue_ptr), "first": self.first,
                    "knn": float(trainer.callback_metrics["val/knn_acc"])}}, {out!r} + f"/rank{{trainer.global_rank}}.pt")

if __name__ == "__main__":
    pl.seed_everything(0)
    m = NASiamSearchModule(framework="moco", backbone="digits_convnet", in_chans=1, mean=[0.3], std=[0.4], width=8,
                           dim=16, proj_layers=2, queue_size=256, views="digits", lr=0.05, arch_lr=0.03)
    t = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, limit_train_batches=3,
                   limit_val_batches=2, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, callbacks=[Dump(), KNNMonitor(k=20)])
    t.fit(m, DigitsNASDataModule(batch_size=16, search=True, corrupted=False, channels=1))
'''


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ddp_moco_search_keeps_ranks_and_queues_in_sync(tmp_path):
    run_ddp_script(SCRIPT.format(root=str(ROOT), out=str(tmp_path)), tmp_path, timeout=280)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["first"] != r1["first"]  # each rank trains on its own shard
    for x, y in zip(r0["a"] + r0["w"], r1["a"] + r1["w"]):
        torch.testing.assert_close(x, y)
    # 3 steps x (alpha + weight forward) x 2 views x 16 images x 2 ranks keys entered the queue, identically on both
    assert r0["ptr"] == r1["ptr"] == (3 * 2 * 2 * 16 * 2) % 256
    torch.testing.assert_close(r0["queue"], r1["queue"])
    assert r0["knn"] == r1["knn"]
