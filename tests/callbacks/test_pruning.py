"""PruningSchedule: one-shot / iterative physical pruning, policies, checkpoints that rebuild the pruned net."""
from __future__ import annotations

import json

import lightning.pytorch as pl
import pytest
import torch

from callbacks.pruning import PruningSchedule
from datamodules.digits import DigitsDataModule
from zoo.core.profiling import count_params
from zoo.quickstart import QuickstartClassifier
from zoo.robust_pruning.module import RobustPruneModule
from zoo.robust_pruning.policy import MRSAllocation


def _fit(model, cb, tmp_path, epochs=1, **kw) -> pl.Trainer:
    pl.seed_everything(0)
    kw = {"limit_train_batches": 4, "limit_val_batches": 2, **kw}
    trainer = pl.Trainer(max_epochs=epochs, callbacks=[cb], logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=str(tmp_path), **kw)
    trainer.fit(model, DigitsDataModule(batch_size=64))
    return trainer


def test_one_shot_on_any_classifier(tmp_path):
    model = QuickstartClassifier(width=16)
    dense = count_params(model.net)
    cb = PruningSchedule(sparsity=0.5, criterion="l1")
    trainer = _fit(model, cb, tmp_path)
    assert count_params(model.net) == pytest.approx(0.5 * dense, rel=0.01)
    assert model.net.features[3].out_channels < 16
    ckpt = torch.load(trainer.checkpoint_callback.best_model_path, weights_only=True)
    assert ckpt["pruned_structure"]["net.features.3"][0] == model.net.features[3].out_channels
    history = json.loads((tmp_path / "pruning_history.json").read_text())
    assert history[0]["param_sparsity"] == pytest.approx(0.5, abs=0.01)


def test_iterative_robust_module_checkpoint_round_trip(tmp_path):
    model = RobustPruneModule(train_steps=1, train_eps=0.1, train_alpha=0.05, lr=0.05, finetune_loss="trades")
    dense = count_params(model.net)
    cb = PruningSchedule(sparsity=0.6, criterion="random", start_epoch=1, steps=2, seed=1)
    trainer = _fit(model, cb, tmp_path, epochs=3)
    sparsities = [h["param_sparsity"] for h in cb.history]
    assert sparsities[0] == pytest.approx(1 - 0.4 ** 0.5, abs=0.01)
    assert sparsities[1] == pytest.approx(0.6, abs=0.01)
    assert [h["epoch"] for h in cb.history] == [1, 2]
    assert model.pruned and model.train_loss_kind == "trades"
    optimised = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert optimised == {id(p) for p in model.parameters()}  # the new optimiser holds the pruned tensors
    assert trainer.optimizers[0].param_groups[0]["initial_lr"] == pytest.approx(model.hparams.finetune_lr)
    assert count_params(model.net) == pytest.approx(0.4 * dense, rel=0.01)
    path = trainer.checkpoint_callback.best_model_path
    loaded = RobustPruneModule.load_from_checkpoint(path, weights_only=True)
    assert count_params(loaded.net) == count_params(model.net)
    x = torch.rand(4, 1, 8, 8)
    model.eval(), loaded.eval()
    assert torch.allclose(loaded(x), model(x), atol=1e-5)


def test_explicit_dict_policy_and_bad_names(tmp_path):
    model = QuickstartClassifier(width=16)
    _fit(model, PruningSchedule(ratio_policy={"features.3": 0.25}), tmp_path)
    assert model.net.features[3].out_channels == 12 and model.net.features[7].out_channels == 32
    with pytest.raises(ValueError, match="not prunable units"):
        _fit(QuickstartClassifier(width=16), PruningSchedule(ratio_policy={"features.0": 0.5}), tmp_path)
    with pytest.raises(ValueError, match="ratio_policy"):
        PruningSchedule(ratio_policy="mrs")


def test_mrs_policy_prunes_sensitive_layers_less(tmp_path):
    pl.seed_everything(0)
    model = RobustPruneModule(train_steps=1)
    policy = MRSAllocation(num_samples=128, attack_eps=0.1, attack_alpha=0.05, attack_steps=2, ascent_steps=2,
                           delta=0.5, p_max=0.9, cache_dir=str(tmp_path / "mrs"))
    cb = PruningSchedule(sparsity=0.5, ratio_policy=policy)
    _fit(model, cb, tmp_path, limit_val_batches=0)
    rec = cb.history[0]
    assert len(list((tmp_path / "mrs").glob("mrs-*.json"))) == 1
    assert rec["param_sparsity"] == pytest.approx(0.5, abs=0.01)
    scores, ratios = rec["scores"], rec["ratios"]
    hi, lo = max(scores, key=scores.get), min(scores, key=scores.get)
    assert ratios[hi] < ratios[lo]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ddp_ranks_prune_identically_and_report_global_robust_accuracy(tmp_path):
    """Two CPU processes (gloo): data-dependent (adversarial Taylor) pruning gives one network on both ranks."""
    import subprocess
    import sys
    from pathlib import Path

    job = Path(__file__).with_name("_ddp_job.py")
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    proc = subprocess.run([sys.executable, str(job), str(tmp_path)], capture_output=True, text=True, timeout=280,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{k}.json").read_text()) for k in (0, 1))
    assert r0["digest"] == r1["digest"] and r0["structure"] == r1["structure"] and r0["ratios"] == r1["ratios"]
    assert r0["adv"] == r1["adv"]  # one global value, not each rank's own
    assert 0 <= r0["adv"]["val/robust_acc_pgd5"] <= r0["adv"]["val/clean_acc_adv"]


@pytest.mark.parametrize("arch,coupled", [("resnet18", True), ("vgg16_bn", False)])
def test_cifar_nets_prune_train_and_reload(tmp_path, arch, coupled):
    pl.seed_everything(0)
    model = RobustPruneModule(arch=arch, in_chans=3, input_size=32, width=0.125, train_steps=1,
                              finetune_loss="pgd_at")
    dense = count_params(model.net)
    trainer = pl.Trainer(max_epochs=1, callbacks=[PruningSchedule(sparsity=0.5, coupled=coupled, criterion="l2")],
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=str(tmp_path), limit_train_batches=2, limit_val_batches=1)
    trainer.fit(model, DigitsDataModule(batch_size=16, image_size=32, channels=3))
    assert count_params(model.net) == pytest.approx(0.5 * dense, rel=0.01)
    loaded = RobustPruneModule.load_from_checkpoint(trainer.checkpoint_callback.best_model_path, weights_only=True)
    x = torch.rand(2, 3, 32, 32)
    model.eval(), loaded.eval()
    assert torch.allclose(loaded(x), model(x), atol=1e-5)


def test_plain_dataloaders_without_datamodule(tmp_path):
    from torch.utils.data import DataLoader, TensorDataset

    dm = DigitsDataModule(batch_size=64)
    dm.setup()
    model = QuickstartClassifier(width=32)
    dense = count_params(model.net)
    pl.seed_everything(0)
    trainer = pl.Trainer(max_epochs=1, callbacks=[PruningSchedule(sparsity=0.4)], logger=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path),
                         limit_train_batches=3)
    trainer.fit(model, DataLoader(dm.datasets["train"], batch_size=32, shuffle=True))
    assert count_params(model.net) == pytest.approx(0.6 * dense, rel=0.01)
    optimised = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert optimised == {id(p) for p in model.parameters()}


def test_pruned_structure_in_checkpoint_rebuilds_a_generic_module(tmp_path):
    """checkpoint["pruned_structure"] (names relative to the LightningModule) is all a module needs to reload."""
    from zoo.core.structured_pruning import apply_structure

    class Reloadable(QuickstartClassifier):  # what ClassifierModule.on_load_checkpoint would do
        def on_load_checkpoint(self, checkpoint):
            if checkpoint.get("pruned_structure"):
                apply_structure(self, checkpoint["pruned_structure"])

    model = Reloadable(width=16)
    trainer = _fit(model, PruningSchedule(sparsity=0.5, criterion="bn_scale"), tmp_path)
    loaded = Reloadable.load_from_checkpoint(trainer.checkpoint_callback.best_model_path, weights_only=True)
    x = torch.rand(3, 1, 8, 8)
    model.eval(), loaded.eval()
    assert count_params(loaded) == count_params(model) and torch.allclose(loaded(x), model(x), atol=1e-5)
