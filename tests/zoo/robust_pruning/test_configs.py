"""Paper configs and the sweep: every grid point becomes a config LightningCLI accepts."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from zoo.robust_pruning import sweep

ROOT = Path(__file__).resolve().parents[3]


def test_sweep_dry_run_writes_the_grid(tmp_path, capsys):
    sweep.main(["--datasets", "cifar10", "svhn", "--archs", "resnet18", "vgg16_bn", "--sparsities", "0.5", "0.7",
                "0.9", "--root", str(tmp_path), "--out", str(tmp_path / "r.md"), "--dry-run"])
    configs = sorted((tmp_path / "configs").glob("*.yaml"))
    assert len(configs) == 2 * 2 * (1 + 3 * 2 * 2 * 2)  # dense + sparsity x policy x criterion x fine-tune
    cfg = yaml.safe_load((tmp_path / "configs" / "svhn_vgg16_bn_s70_uniform_random_natural.yaml").read_text())
    prune = cfg["trainer"]["callbacks"][0]["init_args"]
    assert (prune["sparsity"], prune["criterion"], prune["ratio_policy"]) == (0.7, "random", "uniform")
    assert cfg["model"]["init_args"]["finetune_loss"] == "natural" and cfg["model"]["init_args"]["finetune_lr"] == 0.005
    assert cfg["data"]["class_path"] == "datamodules.svhn.SVHNDataModule"
    table = (tmp_path / "r.md").read_text().splitlines()
    assert table[0].startswith("| dataset | arch") and "AA" in table[0] and "MACs" in table[0]
    assert len(table) == 2 + 2 * 2 * 24


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_paper_configs_parse():
    files = ["paper.yaml", "data/tiny_imagenet.yaml", "arch/vgg16_bn.yaml"]
    from tests.conftest import run_zoo

    args = ["fit"] + [a for f in files for a in ("--config", str(ROOT / "configs" / "robust_pruning" / f))]
    out = run_zoo(args + ["--print_config"], threads=1, timeout=280).stdout
    cfg = yaml.safe_load(out)
    assert cfg["model"]["class_path"] == "zoo.robust_pruning.module.RobustPruneModule"
    assert cfg["trainer"]["inference_mode"] is False
    assert cfg["model"]["init_args"]["arch"] == "vgg16_bn" and cfg["model"]["init_args"]["num_classes"] == 200
    assert cfg["trainer"]["callbacks"][0]["init_args"]["ratio_policy"]["class_path"].endswith("MRSAllocation")
