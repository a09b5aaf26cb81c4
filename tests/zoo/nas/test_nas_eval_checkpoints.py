"""DartsEvalModule with the D-DARTS recipe (AutoAugment + Cutout): fixed parameter set, checkpoints that reload and
resume through the CLI, and Cutout holes that hold the normalisation mean (issues 19.1 and 14.6)."""
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, run_zoo
from zoo.nas.module import DartsEvalModule

MEAN, STD = [0.2, 0.4, 0.6], [0.5, 0.25, 0.125]


def _module(**kw) -> DartsEvalModule:
    args = dict(genotype="DARTS_DIGITS", C=4, layers=3, auxiliary=False, mean=MEAN, std=STD, cutout_length=6,
                auto_augment=True)
    return DartsEvalModule(**{**args, **kw})


def test_auto_augment_adds_no_parameters_and_no_state_keys():
    with_aa, without = _module(), _module(auto_augment=False)
    assert set(with_aa.state_dict()) == set(without.state_dict())
    assert sum(p.numel() for p in with_aa.parameters()) == sum(p.numel() for p in without.parameters())
    with_aa.train()
    before = set(with_aa.state_dict())
    with_aa.augment(torch.rand(4, 3, 32, 32))  # the step that used to create the submodule
    assert set(with_aa.state_dict()) == before


def test_checkpoint_with_legacy_auto_augment_keys_still_loads(tmp_path):
    m = _module()
    state = dict(m.state_dict())
    from kornia.augmentation.auto import AutoAugment

    state.update({f"_auto_aug.{k}": v for k, v in AutoAugment("cifar10").state_dict().items()})
    path = tmp_path / "legacy.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": dict(m.hparams), "pytorch-lightning_version": "2.4.0"}, path)
    again = DartsEvalModule.load_from_checkpoint(path, weights_only=True)
    for k, v in m.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k


@pytest.mark.timeout(600)
def test_auto_augment_run_reloads_and_resumes_from_last(tmp_path):
    import zoo

    common = ["--config", str(ROOT / "configs/d_darts/tiny_eval.yaml"), "--model.init_args.auto_augment", "true",
              "--model.init_args.cutout_length", "4", "--model.init_args.C", "4", "--model.init_args.layers", "5",
              "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--trainer.logger", "false",
              "--trainer.default_root_dir", str(tmp_path), "--test_after_fit", "false", "--checkpoint.monitor", "null"]
    run_zoo(["fit", *common, "--trainer.max_epochs", "1"], threads=1)
    last = tmp_path / "checkpoints" / "last.ckpt"
    first = torch.load(last, weights_only=True)
    assert not [k for k in first["state_dict"] if "auto_aug" in k]
    fresh = _module(genotype="DDARTS_DIGITS", C=4, layers=5, mean=[0.5] * 3, std=[0.5] * 3, cutout_length=4)
    assert set(first["state_dict"]) == set(fresh.state_dict())

    module = DartsEvalModule.load_from_checkpoint(last, weights_only=True)
    assert module.hparams.auto_augment and module._auto_aug_holder
    net = zoo.load(str(last))
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(net(x), module.eval().net(x))

    run_zoo(["fit", *common, "--trainer.max_epochs", "2", "--ckpt_path", "last"], threads=1)
    resumed = torch.load(last, weights_only=True)
    assert resumed["global_step"] == 2 * first["global_step"] and resumed["epoch"] == first["epoch"] + 1


def test_cutout_hole_holds_the_normalisation_mean():
    torch.manual_seed(0)
    m = _module(auto_augment=False, cutout_length=6)
    x = torch.ones(64, 3, 16, 16)
    y = m.augment(x)
    hole = (y != 1).any(1)  # (N, H, W)
    sizes = hole.flatten(1).sum(1)
    assert int(sizes.min()) >= 9 and int(sizes.max()) == 36  # a 6x6 square, clipped at the borders
    for c, mean in enumerate(MEAN):
        assert torch.allclose(y[:, c][hole], torch.full_like(y[:, c][hole], mean))
    normalised = (y - m.net.mean) / m.net.std  # what the network's first layer receives
    assert normalised.permute(1, 0, 2, 3)[:, hole].abs().max() < 1e-6
