"""SSL evaluation: the logistic-regression probe, last-checkpoint resolution, and linear evaluation on a frozen
backbone (weights unchanged, BN kept in eval mode, the recipes' optimisers)."""
import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zoo.core.ssl_eval import LinearEvalModule, last_checkpoint, logistic_probe


class _Feat(nn.Module):
    def __init__(self, informative: bool) -> None:
        super().__init__()
        self.informative = informative
        self.p = nn.Parameter(torch.zeros(1))

    def forward_features(self, x):
        return x if self.informative else torch.randn(len(x), x.shape[1], generator=torch.Generator().manual_seed(0))


def _loader(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 6, generator=g) + 4 * nn.functional.one_hot(y, 6).float()
    return DataLoader(TensorDataset(x, y), batch_size=32)


def test_logistic_probe_separates_informative_features_only():
    good = logistic_probe(_Feat(True), _loader(300, 0), _loader(150, 1))
    bad = logistic_probe(_Feat(False), _loader(300, 0), _loader(150, 1), standardize=True)
    assert good > 0.85 and bad < 0.5


def _ssl_run(tmp_path):
    from datamodules.digits import DigitsDataModule
    from zoo.nasiam.module import NASiamModule

    pl.seed_everything(0)
    model = NASiamModule(framework="simsiam", backbone="digits_convnet", in_chans=1, mean=[0.3], std=[0.4], width=8,
                         dim=16, pred_dim=8, views="digits", lr=0.05)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "run" / "checkpoints", save_last=True, monitor=None)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=4, limit_val_batches=0, logger=False, callbacks=[ckpt],
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, DigitsDataModule(batch_size=64))
    return model


def test_last_checkpoint_resolution(tmp_path):
    _ssl_run(tmp_path)
    run = tmp_path / "run"
    assert last_checkpoint(run) == run / "checkpoints" / "last.ckpt" == last_checkpoint(run / "checkpoints")
    with pytest.raises(FileNotFoundError, match="last.ckpt"):
        last_checkpoint(tmp_path / "run" / "nothing_here" if (tmp_path / "run" / "nothing_here").mkdir() is None else "")
    with pytest.raises(FileNotFoundError):
        last_checkpoint(tmp_path / "missing.ckpt")


@pytest.mark.timeout(120)
def test_linear_eval_trains_only_the_classifier_on_a_frozen_backbone(tmp_path):
    from datamodules.digits import DigitsDataModule

    ssl = _ssl_run(tmp_path)
    module = LinearEvalModule(str(tmp_path / "run"), num_classes=10, recipe="simsiam", train_augment="none",
                              crop_size=8, lr=1.0)
    assert module.fc.in_features == 16 and abs(float(module.fc.weight.detach().std()) - 0.01) < 0.003
    assert module.fc.bias.abs().sum() == 0
    frozen = {k: v.clone() for k, v in module.backbone.state_dict().items()}
    torch.testing.assert_close(frozen["backbone.trunk.0.weight"], ssl.net.state_dict()["backbone.trunk.0.weight"])
    trainer = pl.Trainer(max_epochs=5, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)
    opt = module.configure_optimizers()["optimizer"]
    assert opt.param_groups[0]["lr"] == 1.0 and opt.param_groups[0]["weight_decay"] == 0 and opt.param_groups[0]["momentum"] == 0.9
    default = LinearEvalModule(str(tmp_path / "run"), lr_batch_size=512).configure_optimizers()["optimizer"]
    assert default.param_groups[0]["lr"] == pytest.approx(30 * 512 / 256)  # SimSiam's lr 30 * B / 256
    module.train()
    assert not module.backbone.training  # BN statistics of pre-training are kept
    trainer.fit(module, DigitsDataModule(batch_size=64))
    for k, v in module.backbone.state_dict().items():
        torch.testing.assert_close(v, frozen[k])  # running stats included: the backbone never changed
    acc = trainer.test(module, DigitsDataModule(batch_size=64), verbose=False)[0]["test/acc"]
    assert acc > 0.2  # ten classes: chance is 0.1 (a 16-d backbone pre-trained for 4 steps)
    moco = LinearEvalModule(str(tmp_path / "run" / "checkpoints" / "last.ckpt"), recipe="moco", train_augment="cifar",
                            crop_size=8)
    sched = moco.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert sched.milestones == {60: 1, 80: 1} and sched.optimizer.param_groups[0]["lr"] == 30.0
    assert isinstance(LinearEvalModule(str(tmp_path / "run"), recipe="simclr").configure_optimizers(), torch.optim.Adam)
    with pytest.raises(ValueError, match="unknown recipe"):
        LinearEvalModule(str(tmp_path / "run"), recipe="byol")
