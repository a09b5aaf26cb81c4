"""ModelProfile: parameter and MAC counts reach the loggers, for one- and two-input forwards."""
from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from callbacks.profiling import ModelProfile


class _Recorder(pl.loggers.logger.DummyLogger):
    def __init__(self):
        super().__init__()
        self.hparams: dict = {}

    def log_hyperparams(self, params, *args, **kwargs):
        self.hparams.update(params)


class _TwoInputs(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 3), nn.Linear(4, 3)
        self.example_input_array = (torch.zeros(1, 6), torch.zeros(1, 4))

    def forward(self, x, y):
        return self.a(x) + self.b(y)

    def training_step(self, batch, batch_idx):
        return self(batch[0], batch[1]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(module, loader) -> dict:
    rec = _Recorder()
    trainer = pl.Trainer(max_steps=1, logger=rec, callbacks=[ModelProfile()], enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, accelerator="cpu")
    trainer.fit(module, loader)
    return rec.hparams


def test_two_input_forward_counted_from_example_input_array():
    loader = DataLoader(TensorDataset(torch.rand(8, 6), torch.rand(8, 4)), batch_size=4)
    summary = _fit(_TwoInputs(), loader)
    assert summary["model/params"] == 6 * 3 + 3 + 4 * 3 + 3
    assert summary["model/macs"] == 6 * 3 + 4 * 3


def test_single_input_counted_on_one_sample_of_the_first_batch():
    from zoo.quickstart import QuickstartClassifier
    from zoo.core.profiling import count_macs

    module = QuickstartClassifier(width=8)
    loader = DataLoader(TensorDataset(torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))), batch_size=8)
    summary = _fit(module, loader)
    assert summary["model/macs"] == count_macs(module.net, (1, 1, 8, 8))
