"""configs/backbone_reduction: the tiny config trains through ``zoo fit`` and reloads; paper configs build [A]-[D];
the Meta-Album driver lists 480 runs and collects a table."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
import yaml

import zoo
from tests.conftest import ROOT, last_metric, run_zoo
from zoo.backbone_reduction import meta_album_runs
from zoo.backbone_reduction.module import RRRNetModule
from zoo.backbone_reduction.nets import BottleneckResNet, BranchEnsemble

CONFIGS = ROOT / "configs" / "backbone_reduction"


def _class(path: str):
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


@pytest.mark.timeout(600)
def test_tiny_config_fits_and_its_checkpoint_loads(tmp_path):
    run_zoo(["fit", "--config", str(CONFIGS / "tiny.yaml"), "--trainer.default_root_dir", str(tmp_path),
             "--trainer.max_epochs", "4", "--model.init_args.ema_epochs", "1", "--model.init_args.warm_stem_epochs", "1"],
            threads=1, timeout=600)
    assert last_metric(tmp_path, "test/acc") > 0.6  # 10 classes: chance is 0.1
    for key in ("test/acc_branch0", "test/acc_branch3", "val/acc_branch_mean"):
        last_metric(tmp_path, key)
    ckpt = next((tmp_path / "checkpoints").glob("best-*.ckpt"))
    net = zoo.load(str(ckpt))
    module = RRRNetModule.load_from_checkpoint(ckpt, weights_only=True).eval()
    assert isinstance(net, BranchEnsemble) and len(net.branches) == 4
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net(x), module(x), atol=1e-6)


@pytest.mark.parametrize("method,kind,branches,trainable", [
    ("a", BottleneckResNet, 0, "head"), ("b", BottleneckResNet, 0, "all"), ("c", BranchEnsemble, 1, "all"),
    ("d", BranchEnsemble, 8, "all")])
def test_paper_configs_build_the_four_methods(method, kind, branches, trainable, tmp_path, monkeypatch):
    cfg = yaml.safe_load((CONFIGS / f"paper_{method}.yaml").read_text())
    args = cfg["model"]["init_args"]
    assert (args["lr"], args["weight_decay"], args["ema_epochs"], args["warm_stem_epochs"]) == (1e-3, 0.01, 60, 10)
    assert args["use_ema"] is False  # the authors' test() evaluates the raw final weights
    assert cfg["trainer"]["max_epochs"] == 300 and cfg["data"]["init_args"]["batch_size"] == 32
    assert cfg["data"]["init_args"]["image_size"] == 128 and cfg["checkpoint"]["monitor"] is None
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # the timm weights are not cached here: clear error
    with pytest.raises(FileNotFoundError, match="resnet152.a1h_in1k.*Nothing is downloaded"):
        _class(cfg["model"]["class_path"])(**args)
    module = _class(cfg["model"]["class_path"])(**{**args, "source": "random"})
    assert isinstance(module.net, kind) and module.hparams.trainable == trainable
    assert len(getattr(module.net, "branches", [])) == branches
    if method == "a":
        assert [n for n, p in module.net.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    data = _class(cfg["data"]["class_path"])(**cfg["data"]["init_args"])
    with pytest.raises(FileNotFoundError, match="meta-album.github.io"):
        data.setup()


@pytest.mark.timeout(600)
def test_paper_d_config_runs_through_zoo_fit_on_a_meta_album_copy(tmp_path):
    """The paper config end to end (8 branches, 8 loaders, no model selection) at tiny widths and 16x16."""
    from tests.datamodules.test_meta_album import make_dataset

    make_dataset(tmp_path / "data" / "Set0_Micro" / "BCT_Micro", per_class=4)
    run_zoo(["fit", "--config", str(CONFIGS / "paper_d.yaml"), "--trainer.accelerator", "cpu",
             "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(tmp_path / "run"),
             "--model.init_args.source", "random", "--model.init_args.num_classes", "3",
             "--model.init_args.layers", "[1, 1, 1, 1]", "--model.init_args.planes", "[4, 8, 16, 32]",
             "--model.init_args.stem", "cifar", "--model.init_args.ema_epochs", "1",
             "--model.init_args.warm_stem_epochs", "1", "--data.init_args.data_dir", str(tmp_path / "data"),
             "--data.init_args.image_size", "16", "--data.init_args.train_per_class", "2",
             "--data.init_args.test_per_class", "2", "--data.init_args.num_workers", "0"], threads=1, timeout=600)
    for key in ("test/acc", "test/acc_branch7", "test/acc_branch_mean"):
        assert 0.0 <= last_metric(tmp_path / "run", key) <= 1.0
    best = next((tmp_path / "run" / "checkpoints").glob("best-*.ckpt"))
    assert "epoch001" in best.name  # monitor: null keeps the final epoch's weights
    assert len(zoo.load(str(best)).branches) == 8


def test_driver_lists_every_run_and_collects_a_table(tmp_path, capsys):
    runs = meta_album_runs.commands("data/meta_album", tmp_path, count_classes=False)
    assert len(runs) == 40 * 3 * 4 and len({str(f) for f, _ in runs}) == 480
    folder, argv = runs[0]
    assert "--seed_everything" in argv and argv[argv.index("--seed_everything") + 1] == "25"
    for method, acc in (("c", 0.8), ("d", 0.9)):
        for seed in (21, 31):
            d = meta_album_runs.run_dir(tmp_path, method, "BCT", seed) / "csv" / "version_0"
            d.mkdir(parents=True)
            (d / "metrics.csv").write_text(f"epoch,val/acc,test/acc,test/acc_branch_mean\n0,0.5,,\n1,,{acc + seed / 1000},0.7\n")
    meta_album_runs.main(["collect", "--out", str(tmp_path)])
    rows = (tmp_path / "results.csv").read_text().splitlines()
    assert rows[0] == "method,dataset,seed,test_acc,test_acc_branch_mean" and len(rows) == 5
    summary = (tmp_path / "summary.csv").read_text().splitlines()
    assert summary[1].startswith("BCT,0.8260,") and (tmp_path / "results.png").stat().st_size > 1000
    with pytest.raises(FileNotFoundError, match="no finished runs"):
        meta_album_runs.collect(Path(tmp_path / "empty"))
