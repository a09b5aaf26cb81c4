"""Model cards (zoo/weights/model_cards.json): one schema for every entry, numbers measured, inputs checked."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

import zoo
from zoo import hub
from zoo.core.profiling import count_macs, count_params
from zoo.kdl.kernels import KernelConv2d
from zoo.registry import load_cards, measure_cost, unified_metrics

ROOT = Path(__file__).resolve().parents[2]
NAMES = zoo.list_models()
WEIGHTED = zoo.list_models(pretrained=True)


def shipped(name: str) -> dict:
    w = zoo.get_entry(name).weights
    return hub.load_state(str(hub.PACKAGE_DIR / w.path), sha256=w.sha256)


def test_every_registered_model_has_a_card_and_no_card_is_stale():
    assert sorted(load_cards()) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_card_schema(name):
    cfg = zoo.get_entry(name).cfg
    inp = cfg["input"]
    assert {"input_size", "channels", "value_range", "mean", "std", "interpolation"} <= set(inp)
    assert inp["input_size"][0] == inp["channels"] and len(inp["input_size"]) == 3
    lo, hi = inp["value_range"]
    assert lo < hi
    assert cfg["labels"]["kind"] in {"classes", "joints", "positions", "none"}
    if "names" in cfg["labels"]:
        assert len(cfg["labels"]["names"]) == cfg["labels"]["count"]
    assert cfg["output"]["meaning"] and cfg["output"]["units"]
    assert cfg["paper"] == zoo.get_entry(name).paper and cfg["datasets"] and cfg["task"]
    assert (ROOT / cfg["docs"]).is_file()
    configs = [w for w in cfg["recipe"].replace(",", " ").split() if w.endswith(".yaml")]
    assert configs and all((ROOT / c).is_file() for c in configs), cfg["recipe"]
    assert isinstance(cfg["params"], int) and isinstance(cfg["macs"], int)


@pytest.mark.parametrize("name", NAMES)
def test_recorded_params_and_macs_are_measured(name):
    assert {"params": load_cards()[name]["params"], "macs": load_cards()[name]["macs"]} == measure_cost(name)


def test_measure_cost_counts_a_model_by_hand():
    """quickstart_cnn measured directly with zoo.core.profiling on a CPU copy equals its card."""
    net = zoo.load("quickstart_cnn")
    card = load_cards()["quickstart_cnn"]
    assert count_params(net) == card["params"] == sum(p.numel() for p in net.parameters())
    assert count_macs(net, (1, *card["input"]["input_size"])) == card["macs"]


def _first_conv(net: nn.Module) -> nn.Module:
    return next(m for m in net.modules() if isinstance(m, (nn.Conv2d, KernelConv2d)))


@pytest.mark.parametrize("name", NAMES)
def test_card_channels_and_normalisation_are_the_networks(name):
    entry = zoo.get_entry(name)
    net = zoo.load(name, check_inputs=False) if entry.weights else zoo.create_model(name, check_inputs=False)
    inp = entry.cfg["input"]
    assert _first_conv(net).in_channels == inp["channels"]
    buffers = dict(net.named_buffers())
    means = [k for k in buffers if k.split(".")[-1] == "mean" and k[:-4] + "std" in buffers]
    if inp["mean"] is None:
        assert not means
    else:
        torch.testing.assert_close(buffers[means[0]].flatten(), torch.tensor(inp["mean"]), atol=1e-6, rtol=0)
        torch.testing.assert_close(buffers[means[0][:-4] + "std"].flatten(), torch.tensor(inp["std"]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", WEIGHTED)
def test_weighted_card_matches_the_shipped_file(name):
    cfg, payload = zoo.get_entry(name).cfg, shipped(name)
    assert cfg["arch_kwargs"] == payload["arch_kwargs"]
    assert cfg["weights"]["sha256"] == zoo.get_entry(name).weights.sha256 == hub.sha256_file(hub.PACKAGE_DIR / cfg["weights"]["file"])
    assert cfg["metrics"] == unified_metrics(payload["metadata"]) and cfg["metric"] in cfg["metrics"]
    recorded = zoo.get_entry(name).weights.metadata.get("checkpoint") or payload["metadata"].get("checkpoint")
    assert cfg["checkpoint"] == (recorded or "not recorded")
    init_args = yaml.safe_load((ROOT / cfg["config"]).read_text())["model"]["init_args"]
    assert zoo.get_entry(name).module_kwargs == init_args


@pytest.mark.parametrize("name", WEIGHTED)
def test_module_kwargs_rebuild_the_shipped_architecture(name):
    """The LightningModule built from entry.module_kwargs holds a network with the shipped weights' tensors."""
    entry = zoo.get_entry(name)
    module_path, _, cls_name = entry.module.rpartition(".")
    module = getattr(importlib.import_module(module_path), cls_name)(**entry.module_kwargs)
    ours = {k: v.shape for k, v in module.net.state_dict().items() if not k.startswith("auxiliary")}
    theirs = {k: v.shape for k, v in shipped(name)["state_dict"].items()}
    assert ours.keys() == theirs.keys()
    if "structure" not in entry.cfg["arch_kwargs"]:  # a pruned file is narrower than the module before pruning
        assert ours == theirs


def test_unified_metrics_renames_the_old_keys():
    assert unified_metrics({"test_acc": 0.5, "config": "x", "epochs": 3}) == {"test/acc": 0.5}
    assert unified_metrics({"metrics": {"test/acc": 0.9}, "params": 10}) == {"test/acc": 0.9}
    assert unified_metrics({"test_mpjpe_mm": 117.5, "val_mpjpe_mm": 116.0, "test_closed_meshes": "23/24"}) == {
        "test/mpjpe": 117.5, "val/mpjpe": 116.0}


def test_raw_digits_and_wrong_channels_raise_a_clear_error():
    net = zoo.load("quickstart_cnn")
    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(ValueError, match=r"far outside the expected range \[0.0, 1.0\]"):
        net(x * 16)  # sklearn's raw digits are 0-16
    for name in ("darts_digits", "rrrnet_tiny"):  # trained on three channels
        with pytest.raises(ValueError, match="3 channel"):
            zoo.load(name)(torch.rand(2, 1, *zoo.get_entry(name).cfg["input"]["input_size"][1:]))


def test_input_check_passes_valid_inputs_unchanged_and_switches_off():
    net = zoo.load("quickstart_cnn")
    x = torch.rand(4, 1, 8, 8)
    expected = zoo.load("quickstart_cnn", check_inputs=False)(x)
    torch.testing.assert_close(net(x), expected)
    assert not hasattr(zoo.load("quickstart_cnn", check_inputs=False), "zoo_input_check")
    net.zoo_input_check.enabled = False
    assert net(x * 16).shape == (4, 10)
    assert not hasattr(zoo.create_model("quickstart_cnn", width=4), "zoo_input_check")  # not the card's architecture


def test_pretrained_metadata_has_unified_metrics():
    assert zoo.load("kdl_digits").pretrained_metadata["metrics"] == {"test/acc": shipped("kdl_digits")["metadata"]["test_acc"]}
    assert zoo.load("quickstart_cnn").pretrained_cfg["input"]["value_range"] == [0.0, 1.0]
