"""NASiam against the authors' code (aheuillet/NASiam): the weight lr schedule each framework's script actually
runs, MoCo's Linear bias in its linear ops, and SimCLR's op order."""
from __future__ import annotations

import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import yaml
from torch import nn

from zoo.nasiam.frameworks import SiameseNet
from zoo.nasiam.heads import SearchChain
from zoo.nasiam.module import NASiamModule
from zoo.nasiam.search import NASiamSearchModule

ROOT = Path(__file__).resolve().parents[3]
TINY = dict(backbone="resnet18", width=4, dim=16, pred_dim=8, hidden_dim=8, proj_layers=2, pred_layers=2,
            queue_size=32)


def _lr_per_epoch(module: pl.LightningModule, epochs: int) -> list[list[float]]:
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False)
    module.trainer = trainer  # planned_epochs reads max_epochs
    out = module.configure_optimizers()
    if isinstance(out, dict):
        opt, sched = out["optimizer"], out["lr_scheduler"]["scheduler"]
    elif isinstance(out, tuple):  # search: ([weight optimiser, alpha optimiser], [weight schedule])
        opt, sched = out[0][0], (out[1][0] if out[1] else None)
    else:
        opt, sched = out, None
    lrs = []
    for _ in range(epochs):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        if sched is not None:
            sched.step()
    return lrs


@pytest.mark.parametrize("name", ["search_moco.yaml", "pretrain_moco.yaml", "search_moco_imagenet.yaml",
                                  "pretrain_moco_imagenet.yaml", "search_simsiam.yaml", "pretrain_simsiam.yaml",
                                  "pretrain_simsiam_imagenet.yaml"])
def test_sgd_configs_follow_the_cosine_the_authors_scripts_run(name):
    # MoCo main_moco.py / main_search.py: main() sets args.cos = True, so adjust_learning_rate always takes
    # lr * 0.5 * (1 + cos(pi * epoch / epochs)); SimSiam's adjust_learning_rate is that cosine (predictor fixed).
    cfg = yaml.safe_load((ROOT / "configs" / "nasiam" / name).read_text())
    args = {**cfg["model"]["init_args"], **TINY, "head": "search" if "search" in name else "standard"}
    cls = NASiamSearchModule if "search" in name else NASiamModule
    args = {k: v for k, v in args.items() if k in cls.__init__.__code__.co_varnames}
    module = cls(**args)
    epochs = 20
    lrs = _lr_per_epoch(module, epochs)
    base = cfg["model"]["init_args"]["lr"]
    for e, group_lrs in enumerate(lrs):
        assert group_lrs[0] == pytest.approx(base * 0.5 * (1 + math.cos(math.pi * e / epochs)), rel=1e-9)
        if len(group_lrs) > 1:  # --fix-pred-lr: the predictor keeps init_lr
            assert group_lrs[1] == pytest.approx(base)


def test_multistep_option_is_the_moco_schedule_branch():
    module = NASiamModule(framework="moco", **TINY, lr=0.06, scheduler="multistep", fix_pred_lr=False)
    lrs = _lr_per_epoch(module, 200)
    assert [g[0] for g in lrs] == pytest.approx(
        [0.06 * 0.1 ** ((e >= 120) + (e >= 160)) for e in range(200)], rel=1e-9)


def _linear_ops(chain: nn.Module) -> list[nn.Sequential]:
    return [m for m in chain.modules() if isinstance(m, nn.Sequential) and len(m) == 3
            and isinstance(m[0], nn.Linear) and isinstance(m[1], nn.BatchNorm1d)]


@pytest.mark.parametrize("framework,bias", [("moco", True), ("simsiam", False), ("simclr", False)])
def test_linear_ops_keep_the_bias_only_where_the_code_does(framework, bias):
    # MoCo/moco/operations.py linear_wrapper: nn.Linear(in, out) (bias) -> BN -> act for in >= out;
    # SimSiam's and SimCLR's: nn.Linear(in, out, bias=False)
    net = SiameseNet(framework, head="search", **TINY)
    ops = _linear_ops(net.projector.chain)
    assert ops and all((op[0].bias is not None) is bias for op in ops)
    torch.manual_seed(0)
    op, x = ops[0].eval(), torch.randn(5, ops[0][0].in_features)
    nn.init.normal_(op[1].running_mean), nn.init.uniform_(op[1].running_var, 0.5, 2.0)
    pre = x @ op[0].weight.t() + (op[0].bias if bias else 0)
    bn = (pre - op[1].running_mean) / torch.sqrt(op[1].running_var + op[1].eps) * op[1].weight + op[1].bias
    assert torch.allclose(op(x), op[2](bn), atol=1e-5)
    fixed = SiameseNet(framework, head={"type": "HeadGenotype", "projector": ["linear_relu"] * 2,
                                        "predictor": ["linear_relu"] * 2 if framework == "simsiam" else None}, **TINY)
    assert all((op[0].bias is not None) is bias for op in _linear_ops(fixed.projector.chain))


def test_simclr_search_space_uses_the_simclr_files_op_order():
    # SimCLR/operations.py lists linear_hardswish before linear_silu; SimSiam and MoCo list silu first
    simclr = ("maxpool_3x3", "avgpool_3x3", "identity", "linear_relu", "linear_hardswish", "linear_silu", "linear_elu")
    other = ("maxpool_3x3", "avgpool_3x3", "identity", "linear_relu", "linear_silu", "linear_hardswish", "linear_elu")
    chain = SiameseNet("simclr", head="search", **TINY).projector.chain
    assert isinstance(chain, SearchChain) and chain.primitives == simclr
    assert isinstance(chain.layers[0].ops[4][2], nn.Hardswish) and isinstance(chain.layers[0].ops[5][2], nn.SiLU)
    for framework in ("simsiam", "moco"):
        assert SiameseNet(framework, head="search", **TINY).projector.chain.primitives == other
    # a tie in alpha derives the first op in that order: hardswish for SimCLR
    chain.alpha.data.zero_()
    chain.alpha.data[:, 4:6] = 1.0
    assert chain.genotype().ops == ["linear_hardswish"] * len(chain.layers)
    search = NASiamSearchModule(framework="simclr", **TINY, optimizer="adam", lr=1e-3, scheduler="none")
    assert search.net.primitives == simclr


# README command (or the script's default) -> (optimizer, base lr as the script computes it, schedule)
README = {
    "search_simsiam.yaml": ("sgd", 0.06 * 512 / 256, "cosine"),  # --lr 0.06, init_lr = lr * B / 256, B 512
    "pretrain_simsiam.yaml": ("sgd", 0.06 * 512 / 256, "cosine"),
    "pretrain_simsiam_imagenet.yaml": ("sgd", 0.05 * 512 / 256, "cosine"),  # defaults: lr 0.05, B 512
    "search_moco.yaml": ("sgd", 0.06, "cosine"),  # MoCo uses --lr as is; args.cos forced
    "pretrain_moco.yaml": ("sgd", 0.06, "cosine"),
    "search_moco_imagenet.yaml": ("sgd", 0.06, "cosine"),
    "pretrain_moco_imagenet.yaml": ("sgd", 0.06, "cosine"),
    "search_simclr.yaml": ("adam", 1e-3, "none"),  # optim.Adam(lr=1e-3, weight_decay=1e-6), no scheduler
    "pretrain_simclr.yaml": ("adam", 1e-3, "none"),
    "search_simclr_imagenet.yaml": ("adam", 1e-3, "none"),
    "pretrain_simclr_imagenet.yaml": ("adam", 1e-3, "none"),
}


@pytest.mark.parametrize("name", sorted(README))
def test_config_lr_and_schedule_match_the_readme_commands(name):
    cfg = yaml.safe_load((ROOT / "configs" / "nasiam" / name).read_text())["model"]["init_args"]
    optimizer, lr, schedule = README[name]
    assert (cfg["optimizer"], cfg.get("scheduler", "cosine")) == (optimizer, schedule)
    assert cfg["lr"] == pytest.approx(lr)
