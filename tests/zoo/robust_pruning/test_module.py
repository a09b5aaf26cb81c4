"""RobustPruneModule, robust losses, shipped weights and the tiny config end to end."""
from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F

import zoo
from datamodules.digits import DigitsDataModule
from zoo.core.attacks import pgd
from zoo.core.profiling import count_params
from zoo.robust_pruning.losses import robust_loss
from zoo.robust_pruning.module import RobustPruneModule, build_net
from zoo.robust_pruning.net import DigitsCNN


def test_robust_losses():
    torch.manual_seed(0)
    net = DigitsCNN().eval()
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    nat, _ = robust_loss(net, x, y, "natural", 0.1, 0.025, 5)
    at, _ = robust_loss(net, x, y, "pgd_at", 0.1, 0.025, 5)
    tr0, _ = robust_loss(net, x, y, "trades", 0.1, 0.025, 5, beta=0.0)
    tr6, _ = robust_loss(net, x, y, "trades", 0.1, 0.025, 5, beta=6.0)
    assert torch.allclose(nat, F.cross_entropy(net(x), y)) and torch.allclose(tr0, nat)
    assert at > nat and tr6 > nat
    with pytest.raises(ValueError, match="unknown training loss"):
        robust_loss(net, x, y, "mart", 0.1, 0.025, 5)


@pytest.mark.parametrize("arch,shape", [("resnet18", (2, 3, 32, 32)), ("vgg16_bn", (2, 3, 32, 32)),
                                        ("digits_cnn", (2, 1, 8, 8))])
def test_build_net_shapes(arch, shape):
    net = build_net(arch, num_classes=7, in_chans=shape[1], input_size=shape[-1], width=0.125)
    assert net(torch.rand(*shape)).shape == (2, 7)
    assert net.forward_head(net.forward_features(torch.rand(*shape)), pre_logits=True).shape[0] == 2


def test_full_size_parameter_counts():
    assert 11_100_000 < count_params(build_net("resnet18", in_chans=3, input_size=32)) < 11_200_000
    assert 14_700_000 < count_params(build_net("vgg16_bn", in_chans=3, input_size=32)) < 14_800_000


def test_pruned_checkpoint_loads_with_zoo_load(tmp_path):
    from callbacks.pruning import PruningSchedule

    pl.seed_everything(0)
    model = RobustPruneModule(train_steps=1, train_eps=0.1, train_alpha=0.05)
    trainer = pl.Trainer(max_epochs=1, callbacks=[PruningSchedule(sparsity=0.7)], logger=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path),
                         limit_train_batches=2, limit_val_batches=1)
    trainer.fit(model, DigitsDataModule(batch_size=32))
    path = trainer.checkpoint_callback.best_model_path
    net = RobustPruneModule.load_from_checkpoint(path, weights_only=True).net
    assert count_params(net) == count_params(model.net) == pytest.approx(0.3 * count_params(DigitsCNN()), rel=0.02)
    restored = RobustPruneModule.load_from_checkpoint(path, weights_only=True)
    assert restored.pruned and restored.train_loss_kind == "trades"


def test_shipped_weights_are_pruned_accurate_and_robust():
    net = zoo.load("mrs_digits")
    assert count_params(net) < 0.52 * count_params(DigitsCNN())
    dm = DigitsDataModule()
    dm.setup()
    x, y = dm.datasets["test"].tensors
    with torch.no_grad():
        clean = (net(x).argmax(1) == y).float().mean().item()
    robust = (net(pgd(net, x, y, 0.1, 0.01, 20)).argmax(1) == y).float().mean().item()
    assert clean > 0.97 and 0.75 < robust < clean
    with pytest.raises(ValueError, match="conflict"):
        zoo.create_model("mrs_digits", pretrained=True, structure={})


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.xdist_group("tiny_robust_pruning")  # the run is shared with tests/test_readme.py's printed-number check
def test_tiny_config_end_to_end(tiny_fit):
    from tests.conftest import last_metric

    tmp_path = tiny_fit("configs/robust_pruning/tiny.yaml")
    clean = last_metric(tmp_path / "csv", "test/acc")
    robust = last_metric(tmp_path / "csv", "test/robust_acc_pgd20")
    assert clean > 0.95 and 0.6 < robust < clean
    assert last_metric(tmp_path / "csv", "prune/param_sparsity") == pytest.approx(0.5, abs=0.01)
    net = zoo.load(str(tmp_path / "checkpoints" / "last.ckpt"))
    assert count_params(net) == pytest.approx(0.5 * count_params(DigitsCNN()), rel=0.02)
    assert len(list((tmp_path / "mrs_cache").glob("mrs-*.json"))) == 1
    from zoo.core.wandb_records import read_run  # W&B (offline): per-layer table + bar charts, curves

    runs = [read_run(f) for f in tmp_path.glob("wandb/offline-run-*/run-*.wandb")]
    keys = {k for r in runs for row in r["history"] for k in row}
    assert {"prune/layers/_type", "prune/mrs_bar_table/_type", "prune/ratios_bar_table/_type"} <= keys
    assert {"prune/ratio/fc1", "prune/mrs/fc1", "prune/param_sparsity", "val/robust_acc_pgd20"} <= keys
