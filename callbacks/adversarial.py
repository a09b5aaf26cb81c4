"""Adversarial evaluation for any classifier LightningModule: clean and robust accuracy per attack.

At validation and/or test end it attacks the first ``num_samples`` evaluation images (split over DDP
ranks) with the zoo's own FGSM / PGD / CW-inf (and AutoAttack via ``pyautoattack``) and logs the global
``<stage>/clean_acc_adv`` and ``<stage>/robust_acc_<attack>`` (e.g. ``val/robust_acc_pgd20``).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from zoo.core.attacks import AttackSpec, eval_mode, parse_attack


class AdversarialEvaluation(Callback):
    """Log clean and robust accuracy of ``pl_module(x)`` (inputs in [0, 1]) under configured attacks.

    Attacks need gradients, so the Trainer must run evaluation with ``inference_mode=False``.
    """

    def __init__(self, attacks: list[str] | None = None, eps: float = 8 / 255, alpha: float | None = None,
                 num_samples: int = 512, stages: list[str] | None = None, every_n_epochs: int = 1,
                 batch_size: int = 256) -> None:
        super().__init__()
        self.specs: list[AttackSpec] = [parse_attack(a, eps, alpha) for a in (attacks or ["fgsm", "pgd20"])]
        self.stages = list(stages or ["val", "test"])
        bad = set(self.stages) - {"val", "test"}
        if bad:
            raise ValueError(f"stages must be 'val' and/or 'test', got {sorted(bad)}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.num_samples, self.every_n_epochs, self.batch_size = num_samples, every_n_epochs, batch_size
        self._buffer: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.last: dict[str, float] = {}

    # ---- guards ------------------------------------------------------------------------------
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        loops = {"val": [trainer.fit_loop.epoch_loop.val_loop, trainer.validate_loop], "test": [trainer.test_loop]}
        for name in self.stages:
            if any(getattr(loop, "inference_mode", False) for loop in loops[name]):
                raise RuntimeError(
                    "AdversarialEvaluation needs gradients during evaluation, but the Trainer runs it under "
                    "torch.inference_mode. Create the Trainer with inference_mode=False (in a LightningCLI "
                    "config: `trainer: {inference_mode: false}`)."
                )

    def _active(self, trainer: Trainer, stage: str) -> bool:
        if stage not in self.stages or trainer.sanity_checking:
            return False
        return stage == "test" or (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def _per_rank(self, trainer: Trainer) -> int:
        return math.ceil(self.num_samples / max(1, trainer.world_size))

    # ---- collect evaluation images -------------------------------------------------------------
    def _collect(self, trainer: Trainer, batch: Any, stage: str) -> None:
        if not self._active(trainer, stage):
            return
        have = sum(len(y) for _, y in self._buffer)
        need = self._per_rank(trainer) - have
        if need > 0:
            x, y = batch[0], batch[1]
            self._buffer.append((x[:need].detach().clone(), y[:need].detach().clone()))

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if dataloader_idx == 0:
            self._collect(trainer, batch, "val")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if dataloader_idx == 0:
            self._collect(trainer, batch, "test")

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._evaluate(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._evaluate(trainer, pl_module, "test")

    # ---- attack and log ----------------------------------------------------------------------
    def evaluate(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Number of correct predictions, clean and per attack, on ``(x, y)`` (plus ``n``)."""
        counts = {"clean": torch.zeros((), device=x.device), "n": torch.tensor(float(len(y)), device=x.device)}
        counts.update({s.name: torch.zeros((), device=x.device) for s in self.specs})
        for i in range(0, len(y), self.batch_size):
            xb, yb = x[i:i + self.batch_size], y[i:i + self.batch_size]
            with torch.no_grad(), eval_mode(model):
                counts["clean"] += (model(xb).argmax(1) == yb).sum()
            for spec in self.specs:
                with torch.enable_grad():
                    x_adv = spec(model, xb, yb)
                with torch.no_grad(), eval_mode(model):
                    counts[spec.name] += (model(x_adv).argmax(1) == yb).sum()
        return counts

    def _evaluate(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not self._active(trainer, stage):
            return
        if torch.is_inference_mode_enabled():
            raise RuntimeError("AdversarialEvaluation cannot attack under torch.inference_mode; "
                               "use Trainer(inference_mode=False).")
        device = pl_module.device
        if self._buffer:
            x = torch.cat([b[0] for b in self._buffer]).to(device)
            y = torch.cat([b[1] for b in self._buffer]).to(device)
        else:
            x, y = torch.zeros(0, device=device), torch.zeros(0, dtype=torch.long, device=device)
        self._buffer = []
        counts = self.evaluate(pl_module, x, y) if len(y) else {
            k: torch.zeros((), device=device) for k in ("clean", "n", *[s.name for s in self.specs])}
        keys = sorted(counts)
        total = torch.stack([counts[k].float() for k in keys])
        total = trainer.strategy.reduce(total, reduce_op="sum")  # global counts on every rank
        glob = dict(zip(keys, total))
        n = glob.pop("n").clamp_min(1)
        self.last = {f"{stage}/clean_acc_adv": (glob.pop("clean") / n).item()}
        self.last.update({f"{stage}/robust_acc_{k}": (v / n).item() for k, v in glob.items()})
        for key, value in self.last.items():
            pl_module.log(key, value, on_epoch=True, sync_dist=False)
