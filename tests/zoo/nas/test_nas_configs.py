"""configs/darts and configs/d_darts build their model and data; the documented two-step command runs."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = sorted((ROOT / "configs" / "darts").glob("*.yaml")) + sorted((ROOT / "configs" / "d_darts").glob("*.yaml"))


def _build(node):
    """Instantiate a ``{class_path, init_args}`` node (recursively, for wrapped datamodules)."""
    if isinstance(node, dict) and "class_path" in node:
        module, name = node["class_path"].rsplit(".", 1)
        cls = getattr(importlib.import_module(module), name)
        return cls(**{k: _build(v) for k, v in (node.get("init_args") or {}).items()})
    return node


@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_builds_model_data_and_callbacks(path):
    cfg = yaml.safe_load(path.read_text())
    with torch.device("meta"):
        model = _build(cfg["model"])
    data = _build(cfg["data"])
    assert model.hparams.num_classes == getattr(data, "num_classes", model.hparams.num_classes)
    for cb in cfg["trainer"].get("callbacks", []):
        _build(cb)
    if "tiny" in path.name:
        assert cfg["trainer"]["accelerator"] == "cpu"


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("paper", ["darts", "d_darts"])
def test_two_step_search_then_evaluate_from_the_written_genotype(paper, tmp_path):
    from conftest import run_zoo

    from zoo.nas.genotype import load_genotype
    from zoo.nas.module import DartsEvalModule

    search_dir, eval_dir = tmp_path / "search", tmp_path / "eval"
    fast = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1",
            "--trainer.limit_test_batches", "1"]
    run_zoo(["fit", "--config", f"configs/{paper}/tiny.yaml", "--trainer.default_root_dir", str(search_dir), *fast],
            threads=1, timeout=600)
    genotype_file = search_dir / "genotypes" / "genotype.json"
    assert (search_dir / "genotypes" / "genotype_epoch0.json").is_file() and genotype_file.is_file()
    run_zoo(["fit", "--config", f"configs/{paper}/tiny_eval.yaml", "--model.init_args.genotype", str(genotype_file),
             "--trainer.default_root_dir", str(eval_dir), *fast], threads=1, timeout=600)
    ckpt = eval_dir / "checkpoints" / "last.ckpt"
    model = DartsEvalModule.load_from_checkpoint(ckpt, weights_only=True)
    assert model.hparams.genotype == load_genotype(genotype_file).to_dict()
    import zoo
    from zoo.nas.cells import DartsNetwork
    from zoo.nas.search_net import SearchNetwork

    assert isinstance(zoo.load(str(ckpt)), DartsNetwork)  # any zoo fit checkpoint of the paper loads with zoo.load
    assert isinstance(zoo.load(str(search_dir / "checkpoints" / "last.ckpt")), SearchNetwork)
