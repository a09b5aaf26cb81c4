"""RRRNetModule: methods by config, stem BN warm-up, per-branch logs, raw final weights by default (EMA as an
option), checkpoint round-trips."""
from __future__ import annotations

import csv

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import nn

import zoo
from datamodules.digits import DigitsDataModule
from zoo.backbone_reduction.ema import ParameterEMA
from zoo.backbone_reduction.module import RRRNetModule

TINY = dict(num_classes=10, layers=[1, 1, 1, 1], planes=[4, 8, 16, 32], stem="cifar")


def fit(module: RRRNetModule, root, epochs: int = 2) -> pl.Trainer:
    pl.seed_everything(0)
    dm = DigitsDataModule(batch_size=64, image_size=16, channels=3, seed=0)
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=CSVLogger(root), default_root_dir=root,
                         enable_progress_bar=False, enable_model_summary=False, limit_train_batches=6,
                         callbacks=[pl.callbacks.ModelCheckpoint(dirpath=root, save_last=True)])
    trainer.fit(module, dm)
    trainer.test(module, dm, verbose=False)
    return trainer


def logged_keys(root) -> set[str]:
    with open(next(root.rglob("metrics.csv"))) as fh:
        return set(next(csv.reader(fh)))


def stem_bn_stats(module: RRRNetModule) -> torch.Tensor:
    return torch.cat([m.running_mean.clone() for m in module.net.stem.modules() if isinstance(m, nn.BatchNorm2d)])


@pytest.mark.timeout(300)
def test_split_module_trains_logs_branches_and_round_trips(tmp_path):
    torch.manual_seed(0)
    module = RRRNetModule(**TINY, num_branches=2, warm_stem_epochs=1, use_ema=True, ema_epochs=1)
    assert module.automatic_optimization is False
    stem_before = {k: v.clone() for k, v in module.net.stem.state_dict().items() if "running" not in k and "num_batches" not in k}
    bn_before = stem_bn_stats(module)
    branch_before = module.net.branches[1].fc.weight.clone()
    trainer = fit(module, tmp_path)
    assert len(trainer.optimizers) == 2  # one AdamW per branch
    assert bool(module.stem_warmed) and not torch.allclose(stem_bn_stats(module), bn_before)
    stem_after = module.net.stem.state_dict()
    assert all(torch.equal(v, stem_after[k]) for k, v in stem_before.items())  # frozen stem weights
    assert not torch.equal(module.net.branches[1].fc.weight, branch_before)
    keys = logged_keys(tmp_path)
    for key in ("val/acc", "val/acc_branch0", "val/acc_branch1", "val/acc_branch_mean", "test/acc_branch1",
                "train/acc", "test/acc"):
        assert key in keys, key
    last = tmp_path / "last.ckpt"
    # the EMA weights became the model's at the end of training; the last checkpoint holds exactly them
    state = torch.load(last, weights_only=True)["state_dict"]
    assert all(torch.equal(state[k], v) for k, v in module.state_dict().items())
    x = torch.rand(3, 3, 16, 16)
    module.eval()
    reloaded = RRRNetModule.load_from_checkpoint(last, weights_only=True).eval()
    assert torch.allclose(reloaded(x), module(x), atol=1e-6)
    net = zoo.load(str(last))  # a plain-Trainer checkpoint of this paper loads through zoo.load too
    assert torch.allclose(net(x), module(x), atol=1e-6) and not net.training


@pytest.mark.timeout(300)
def test_method_a_trains_only_the_head_but_updates_bn_statistics(tmp_path):
    torch.manual_seed(0)
    module = RRRNetModule(**TINY, nb_blocks=None, trainable="head", ema_epochs=0)
    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    fit(module, tmp_path, epochs=1)
    after = module.net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert {"fc.weight", "fc.bias"} <= changed
    assert not {k for k in changed if k.endswith(("conv1.weight", "conv2.weight", "conv3.weight"))}
    assert any(k.endswith("running_mean") for k in changed)  # the authors' only_last: BN stays in train mode
    with pytest.raises(ValueError, match="trainable='head'"):
        RRRNetModule(**TINY, trainable="head")


@pytest.mark.timeout(300)
def test_one_loader_per_branch_gives_each_branch_its_own_pass(tmp_path):
    from datamodules.meta_album import MetaAlbumDataModule
    from tests.datamodules.test_meta_album import make_dataset

    make_dataset(tmp_path / "D_Micro", per_class=8)
    kw = dict(image_size=16, batch_size=4, train_per_class=4, test_per_class=4)
    dm = MetaAlbumDataModule(str(tmp_path / "D_Micro"), branch_loaders=2, **kw)
    loaders = dm.train_dataloader()
    assert len(loaders) == 2
    torch.manual_seed(0)
    orders = [torch.cat([y for _, y in loader]) for loader in loaders]
    assert sorted(orders[0].tolist()) == sorted(orders[1].tolist()) and not torch.equal(*orders)  # own shuffles
    args = dict(num_classes=3, layers=[1, 1, 1, 1], planes=[4, 8, 16, 32], stem="cifar", num_branches=2,
                warm_stem_epochs=1, ema_epochs=0)
    module = RRRNetModule(**args)
    before = [br.fc.weight.clone() for br in module.net.branches]
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, dm)
    assert bool(module.stem_warmed)
    assert all(not torch.equal(b, br.fc.weight) for b, br in zip(before, module.net.branches))
    # 12 train images / batch 4 = 3 steps per epoch (each branch a full pass), x 2 optimizer steps (one per branch)
    assert trainer.global_step == 2 * 3 * 2
    assert {"train/acc_branch0", "train/acc_branch1", "val/acc_branch_mean"} <= set(trainer.callback_metrics)
    bad = MetaAlbumDataModule(str(tmp_path / "D_Micro"), branch_loaders=3, **kw)
    with pytest.raises(ValueError, match="3 train loaders for 2 branch"):
        pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False).fit(RRRNetModule(**args), bad)


class _LastStepWeights(pl.Callback):
    """Copies the trainable weights after every optimizer step: the last copy is the raw final weights."""

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.weights = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("use_ema", [False, True])
def test_default_tests_and_saves_the_raw_final_weights_as_the_authors_do(tmp_path, use_ema):
    # the authors' run.py: build_ema_list() returns None except at epoch epochs - ema_epochs, so test() gets no EMA
    pl.seed_everything(0)
    module = RRRNetModule(**TINY, num_branches=2, warm_stem_epochs=0, ema_epochs=2, **({"use_ema": True} if use_ema else {}))
    assert module.hparams.use_ema is use_ema
    dm = DigitsDataModule(batch_size=64, image_size=16, channels=3, seed=0)
    spy = _LastStepWeights()
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_train_batches=4, callbacks=[spy],
                         enable_checkpointing=False)
    trainer.fit(module, dm)
    final = dict(module.named_parameters())
    same = all(torch.equal(final[n], w) for n, w in spy.weights.items())
    assert same is not use_ema  # raw weights by default; the zoo's EMA option replaces them
    if use_ema:
        return
    trainer.test(module, dm, verbose=False)
    dm.setup("test")
    module.eval()
    hits = seen = 0
    with torch.no_grad():
        for x, y in dm.test_dataloader():
            probs = torch.stack([br(module.net.forward_features(x)).softmax(-1) for br in module.net.branches]).mean(0)
            hits, seen = hits + int((probs.argmax(-1) == y).sum()), seen + len(y)
    assert trainer.callback_metrics["test/acc"].item() == pytest.approx(hits / seen, abs=1e-6)


def test_ema_matches_torch_ema_formula_by_hand():
    p = nn.Parameter(torch.zeros(2))
    ema = ParameterEMA([p], decay=0.9, use_num_updates=True)
    values, shadow = [1.0, 2.0, 3.0], 0.0
    for n, v in enumerate(values, start=1):
        p.data.fill_(v)
        ema.update()
        d = min(0.9, (1 + n) / (10 + n))
        shadow = d * shadow + (1 - d) * v
    assert torch.allclose(ema.shadow[0], torch.full((2,), shadow))
    ema.swap_in()
    assert torch.allclose(p.data, torch.full((2,), shadow))
    ema.restore()
    assert torch.allclose(p.data, torch.full((2,), 3.0))


def test_source_is_not_needed_to_reload(tmp_path):
    from zoo.backbone_reduction.nets import BottleneckResNet

    src = tmp_path / "src.pt"
    torch.save(BottleneckResNet(num_classes=1000, **{k: TINY[k] for k in ("layers", "planes", "stem")}).state_dict(), src)
    module = RRRNetModule(**TINY, source=str(src), num_branches=2, warm_stem_epochs=0, ema_epochs=0)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, accelerator="cpu")
    trainer.strategy.connect(module)
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    src.unlink()
    hp = torch.load(ckpt, weights_only=True)["hyper_parameters"]
    assert hp["source"] == "random" and hp["source_trained_from"] == str(tmp_path / "src.pt")
    reloaded = RRRNetModule.load_from_checkpoint(ckpt, weights_only=True)
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(reloaded.eval()(x), module.eval()(x), atol=1e-6)


def test_registry_builds_every_rrrnet_entry():
    names = zoo.list_models("rrrnet*")
    assert {"rrrnet_resnet152", "rrrnet_reduced", "rrrnet_split"} <= set(names)
    split = zoo.create_model("rrrnet_split", **{k: TINY[k] for k in ("layers", "planes", "stem")}, num_classes=3)
    assert len(split.branches) == 8 and split(torch.rand(1, 3, 16, 16)).shape == (1, 3)
