"""Two-process CPU DDP job used by the callback tests: pruning + adversarial evaluation on every rank.

Usage: python tests/callbacks/_ddp_job.py OUT_DIR. Each rank writes OUT_DIR/rank<k>.json.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from callbacks.adversarial import AdversarialEvaluation  # noqa: E402
from callbacks.pruning import PruningSchedule  # noqa: E402
from datamodules.digits import DigitsDataModule  # noqa: E402
from zoo.robust_pruning.module import RobustPruneModule  # noqa: E402


class Recording(PruningSchedule):
    """Remembers a hash of the weights right after pruning (before DDP could re-sync them)."""

    def prune_step(self, trainer, pl_module):
        ratios = super().prune_step(trainer, pl_module)
        h = hashlib.sha256()
        for k, v in pl_module.net.state_dict().items():
            h.update(k.encode() + v.cpu().numpy().tobytes())
        self.digest = h.hexdigest()
        return ratios


def main(out: str) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0)
    model = RobustPruneModule(train_steps=1, train_eps=0.1, train_alpha=0.05)
    prune = Recording(sparsity=0.5, criterion="taylor", taylor_adversarial=True, attack_eps=0.1, attack_alpha=0.05,
                      attack_steps=2, start_epoch=1, calib_batches=2)
    adv = AdversarialEvaluation(attacks=["pgd5"], eps=0.1, alpha=0.03, num_samples=60, stages=["val"])
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=2, strategy="ddp", callbacks=[prune, adv],
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, inference_mode=False, limit_train_batches=3,
                         limit_val_batches=2, default_root_dir=out)
    trainer.fit(model, DigitsDataModule(batch_size=32))
    rank = trainer.global_rank
    Path(out, f"rank{rank}.json").write_text(json.dumps({
        "digest": prune.digest, "ratios": prune.history[-1]["ratios"],
        "structure": {k: v for k, v in model.hparams.structure.items()}, "adv": adv.last,
    }))
    # Close gloo before exit: a group left open can abort the interpreter at shutdown (exit -6).
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
