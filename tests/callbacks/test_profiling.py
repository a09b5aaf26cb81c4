"""ModelProfile: parameter and MAC counts reach the loggers, for one- and two-input forwards."""
from __future__ import annotations

import lightning.pytorch as pl
import pytest
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


def _flops_macs(fn, *args) -> int:
    """MACs by torch's flop counter around ``fn(*args)`` (the definition the callback must reproduce)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops() // 2


def _build(section: dict, **overrides):
    import importlib

    module, _, name = section["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**{**section.get("init_args", {}), **overrides})


def _fit_summary(module, datamodule, **trainer_kw) -> dict:
    rec = _Recorder()
    trainer = pl.Trainer(max_steps=1, logger=rec, callbacks=[ModelProfile()], enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, accelerator="cpu",
                         limit_val_batches=0, num_sanity_val_steps=0, **trainer_kw)
    trainer.fit(module, datamodule)
    return rec.hparams


def test_kdl_fer_config_is_counted_on_its_44px_crops_not_the_48px_loader_images(tmp_path):
    """configs/kdl/fer2013.yaml at its real size: the loader gives 48 px, the datamodule crops 44 on the device."""
    import yaml

    from tests.conftest import ROOT
    from tests.datamodules.test_fer import write_fer_csv

    cfg = yaml.safe_load((ROOT / "configs/kdl/fer2013.yaml").read_text())
    write_fer_csv(tmp_path / "fer2013.csv", n_per_usage=4)
    pl.seed_everything(0, verbose=False)
    module = _build(cfg["model"])
    data = _build(cfg["data"], data_dir=str(tmp_path), batch_size=2, num_workers=0)
    loader_x = next(iter((data.setup("fit"), data.train_dataloader())[1]))[0]
    assert loader_x.shape[-1] == 48
    with pytest.raises(RuntimeError):  # what the old count did: the raw loader batch does not fit the network
        module.net.eval()(loader_x[:1])
    summary = _fit_summary(module, data)
    expected = _flops_macs(module.net.eval(), torch.zeros(1, 1, 44, 44))
    assert expected > 0 and summary["model/macs"] == expected
    assert summary["model/params"] == sum(p.numel() for p in module.parameters())


def test_alphazzle_two_input_forward_is_counted_on_the_canvas_and_fragment_it_receives():
    import yaml

    from tests.conftest import ROOT
    from zoo.alphazzle.sampling import policy_batch

    cfg = yaml.safe_load((ROOT / "configs/alphazzle/tiny.yaml").read_text())
    pl.seed_everything(0, verbose=False)
    module = _build(cfg["model"])
    data = _build(cfg["data"], batch_size=4, n_train=16, n_test=4)
    summary = _fit_summary(module, data)
    data.setup("fit")
    images = next(iter(data.train_dataloader()))[0]
    hp = module.hparams
    canvas, fragment, _ = policy_batch(images[:1], hp.grid, hp.frag, hp.gap, min_placed=hp.num_helpers)
    expected = _flops_macs(module.net.eval(), canvas, fragment)  # policy + value networks of one state
    assert canvas.shape[-1] != fragment.shape[-1] and expected > 0
    assert summary["model/macs"] == expected


class _Unprofilable(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, x):
        raise NotImplementedError("this forward is never used")

    def training_step(self, batch, batch_idx):
        return self.lin(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_count_that_cannot_be_made_is_reported_naming_the_module():
    loader = DataLoader(TensorDataset(torch.rand(8, 4)), batch_size=4)
    with pytest.warns(UserWarning, match="model/macs not logged for _Unprofilable: .*NotImplementedError"):
        summary = _fit(_Unprofilable(), loader)
    assert "model/macs" not in summary and summary["model/params"] == 10
