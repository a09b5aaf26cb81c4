"""configs/nasiam: every config builds its model, data and callbacks; the overlays compose through the CLI."""
import importlib
import inspect
import json
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = sorted(p for p in (ROOT / "configs" / "nasiam").glob("*.yaml") if not p.name.startswith("overlay"))


def _cls(path: str):
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def _build(node):
    if isinstance(node, dict) and "class_path" in node:
        return _cls(node["class_path"])(**{k: _build(v) for k, v in (node.get("init_args") or {}).items()})
    return node


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_builds(path, tmp_path):
    from zoo.nasiam import PUBLISHED

    cfg = yaml.safe_load(path.read_text())
    node = cfg["model"]
    head = node["init_args"].get("head")
    if isinstance(head, str) and head.endswith(".json"):  # the genotype its search config writes: same layer counts
        fw = node["init_args"]["framework"]
        g = PUBLISHED[{"moco": "moco_cifar10_resnet50", "simclr": "simclr_cifar10_resnet50"}.get(fw, "nasiam_digits")]
        (tmp_path / "genotype.json").write_text(json.dumps(g.to_dict()))
        node["init_args"]["head"] = str(tmp_path / "genotype.json")
    if node["class_path"].endswith("LinearEvalModule"):  # needs a pre-training run: check the arguments bind
        bound = inspect.signature(_cls(node["class_path"])).bind(**node["init_args"])
        bound.apply_defaults()
        hparams = dict(bound.arguments)
        assert "source" in node["init_args"]
    else:
        with torch.device("meta"):
            model = _build(node)
        hparams = dict(model.hparams_initial)
        head = node["init_args"].get("head")
        if isinstance(head, str) and not head.endswith(".json") and head != "standard":
            assert model.net.genotype_spec is not None
    data = _build(cfg["data"])
    # Lightning refuses to log hparams (and stops fit) when model and datamodule share a key with different values
    clash = {k for k in set(hparams) & set(data.hparams_initial) if hparams[k] != data.hparams_initial[k]}
    assert not clash, clash
    for cb in cfg["trainer"].get("callbacks") or []:
        _build(cb)
    assert cfg["checkpoint"]["monitor"] is None  # no checkpoint is selected on the evaluation split
    assert cfg["trainer"]["accelerator"] == ("cpu" if path.name.startswith("tiny") else "gpu")


@pytest.mark.slow
def test_overlays_compose_cifar100_and_resnet50_for_pretraining_and_search():
    from conftest import run_zoo

    out = run_zoo(["fit", "--config", "configs/nasiam/pretrain_simsiam.yaml", "--config",
                   "configs/nasiam/overlay_cifar100.yaml", "--config", "configs/nasiam/overlay_resnet50.yaml",
                   "--model.init_args.head", "simsiam_cifar100_resnet50", "--print_config"], threads=1, timeout=120).stdout
    cfg = yaml.safe_load(out)
    assert cfg["data"]["class_path"].endswith("CIFAR100DataModule") and cfg["data"]["init_args"]["batch_size"] == 512
    args = cfg["model"]["init_args"]
    assert args["backbone"] == "resnet50" and args["mean"][0] == 0.5071 and args["lr"] == 0.12
    out = run_zoo(["fit", "--config", "configs/nasiam/search_moco.yaml", "--config",
                   "configs/nasiam/overlay_cifar100_search.yaml", "--print_config"], threads=1, timeout=120).stdout
    inner = yaml.safe_load(out)["data"]["init_args"]["datamodule"]
    assert inner["class_path"].endswith("CIFAR100DataModule") and inner["init_args"]["batch_size"] == 512
