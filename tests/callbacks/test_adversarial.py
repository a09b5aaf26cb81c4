"""AdversarialEvaluation: clean/robust accuracy per attack, sample budget, inference-mode guard, DDP."""
from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from callbacks.adversarial import AdversarialEvaluation
from datamodules.digits import DigitsDataModule
from zoo.core.attacks import pgd
from zoo.quickstart import QuickstartClassifier


def _trainer(cb, **kw) -> pl.Trainer:
    return pl.Trainer(callbacks=[cb], logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, **kw)


@pytest.fixture(scope="module")
def trained():
    pl.seed_everything(0)
    model = QuickstartClassifier(width=16, drop_rate=0.0)
    dm = DigitsDataModule(batch_size=64)
    _trainer(AdversarialEvaluation(stages=["test"]), max_epochs=4, inference_mode=False,
             limit_val_batches=0).fit(model, dm)
    return model, dm


def test_reports_clean_and_robust_accuracy(trained):
    model, dm = trained
    cb = AdversarialEvaluation(attacks=["fgsm", "pgd10"], eps=0.1, alpha=0.025, num_samples=100, stages=["val"])
    metrics = _trainer(cb, inference_mode=False).validate(model, dm, verbose=False)[0]
    assert {"val/clean_acc_adv", "val/robust_acc_fgsm", "val/robust_acc_pgd10"} <= set(metrics)
    dm.setup()
    x, y = dm.datasets["val"].tensors
    x, y = x[:100], y[:100]
    model.eval()
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
    assert metrics["val/clean_acc_adv"] == pytest.approx(clean, abs=1e-6)
    direct = (model(pgd(model, x, y, 0.1, 0.025, 10)).argmax(1) == y).float().mean().item()
    assert metrics["val/robust_acc_pgd10"] == pytest.approx(direct, abs=0.05)  # random start differs
    assert metrics["val/robust_acc_pgd10"] <= metrics["val/robust_acc_fgsm"] + 0.02
    assert metrics["val/robust_acc_pgd10"] < clean - 0.2


def test_test_stage_and_eps_zero(trained):
    model, dm = trained
    cb = AdversarialEvaluation(attacks=["pgd5"], eps=0.0, num_samples=64, stages=["test"])
    metrics = _trainer(cb, inference_mode=False).test(model, dm, verbose=False)[0]
    assert metrics["test/robust_acc_pgd5"] == pytest.approx(metrics["test/clean_acc_adv"])


def test_refuses_inference_mode(trained):
    model, dm = trained
    with pytest.raises(RuntimeError, match="inference_mode=False"):
        _trainer(AdversarialEvaluation(stages=["val"])).validate(model, dm, verbose=False)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown attack"):
        AdversarialEvaluation(attacks=["pgd-x"])
    with pytest.raises(ValueError, match="stages"):
        AdversarialEvaluation(stages=["train"])
