"""Preflight: a model/datamodule class-count mismatch stops the run at setup, before any step (issue 13.6)."""
from __future__ import annotations

import lightning.pytorch as pl
import pytest

from callbacks.preflight import Preflight, check_num_classes, data_num_classes, model_num_classes
from datamodules.digits import DigitsDataModule
from zoo.quickstart import QuickstartClassifier


class _StepCounter(pl.Callback):
    def __init__(self):
        self.steps = 0

    def on_train_batch_start(self, *args):
        self.steps += 1


def _trainer(tmp_path, counter):
    return pl.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path, callbacks=[Preflight(), counter])


def test_a_model_with_more_classes_than_the_data_fails_at_setup_naming_both_and_the_flag(tmp_path):
    counter = _StepCounter()
    with pytest.raises(ValueError, match=r"predicts 7 classes but DigitsDataModule has 10.*num_classes 10"):
        _trainer(tmp_path, counter).fit(QuickstartClassifier(num_classes=7), datamodule=DigitsDataModule())
    assert counter.steps == 0


def test_matching_counts_train_and_unknown_counts_are_not_guessed(tmp_path):
    counter = _StepCounter()
    _trainer(tmp_path, counter).fit(QuickstartClassifier(num_classes=10), datamodule=DigitsDataModule())
    assert counter.steps == 2

    class _NoCount(pl.LightningDataModule):
        pass

    assert data_num_classes(_NoCount()) is None
    check_num_classes(QuickstartClassifier(num_classes=3), _NoCount())  # nothing to compare: no error
    assert model_num_classes(pl.LightningModule()) is None


def test_the_cli_adds_the_check(tmp_path):
    from zoo.cli import main

    with pytest.raises(ValueError, match="predicts 4 classes"):
        main(["fit", "--config", "configs/quickstart.yaml", "--model.init_args.num_classes", "4",
              "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false", "--trainer.max_steps", "1",
              "--trainer.enable_progress_bar", "false"])
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()
