"""ModelCheckpoint that keeps ``last.ckpt`` current, so a killed run resumes from its latest epoch."""
from __future__ import annotations

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint


class ResumableCheckpoint(ModelCheckpoint):
    """Lightning 2.6 refreshes ``last.ckpt`` only when a top-k file is written; this refreshes it at
    every validation end (and train epoch end when validation is off) whenever ``save_last`` is set."""

    def _refresh_last(self, trainer: Trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)
