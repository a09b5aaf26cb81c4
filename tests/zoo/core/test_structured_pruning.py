"""DepGraph structured pruning engine: exact counting, physical removal, criteria, determinism, rebuild."""
from __future__ import annotations

import copy

import pytest
import torch

from zoo.core.profiling import count_macs, count_params
from zoo.core.resnet_cifar import resnet18_cifar
from zoo.core.structured_pruning import (
    ParamCounter, apply_structure, channel_importance, find_units, prune_channels, pruning_indices,
    record_structure, uniform_ratios,
)
from zoo.core.vgg import vgg16_bn
from zoo.quickstart.net import SmallCNN
from zoo.robust_pruning.net import DigitsCNN

NETS = {
    "digits_cnn": (lambda: DigitsCNN(), (1, 1, 8, 8)),
    "quickstart": (lambda: SmallCNN(width=16), (1, 1, 8, 8)),
    "resnet18": (lambda: resnet18_cifar(width=16), (1, 3, 32, 32)),
    "vgg16_bn": (lambda: vgg16_bn(width_mult=0.25), (1, 3, 32, 32)),
}


@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("coupled", [False, True])
def test_counted_equals_physical(name, coupled):
    build, shape = NETS[name]
    torch.manual_seed(0)
    net = build().eval()
    x = torch.rand(*shape)
    units = find_units(net, x, coupled=coupled)
    assert units and all(u.name not in ("features.0", "conv1", "head") for u in units)
    counter = ParamCounter(net, x, units)
    ratios = uniform_ratios(counter, 0.5)
    predicted, predicted_macs = counter.count(ratios), counter.count(ratios, "macs")
    dense_macs = count_macs(net, x)
    idx = pruning_indices(units, channel_importance(net, units, "l1"), ratios)
    prune_channels(net, x, idx)
    assert count_params(net) == predicted
    assert predicted == pytest.approx(0.5 * counter.total, rel=0.01)
    assert count_macs(net, x) == predicted_macs < dense_macs
    assert net(x).shape == (1, 10)
    # rebuild the pruned architecture from plain ints and load the weights
    fresh = apply_structure(build(), record_structure(net))
    fresh.load_state_dict(net.state_dict())
    fresh.eval()
    assert torch.allclose(fresh(x), net(x), atol=1e-5)


def test_l1_removes_smallest_filters_and_keeps_the_function():
    torch.manual_seed(0)
    net = DigitsCNN().eval()
    x = torch.rand(4, 1, 8, 8)
    conv = net.features[3]
    with torch.no_grad():
        conv.weight[[2, 5]] *= 1e-3  # two nearly dead filters
    units = find_units(net, x)
    imp = channel_importance(net, units, "l1")
    idx = pruning_indices(units, imp, {"features.3": 2 / 32})
    assert idx["features.3"] == [2, 5]
    with torch.no_grad():
        conv.weight[[2, 5]] = 0.0
        net.features[4].bias[[2, 5]] = 0.0
    before = net(x)
    prune_channels(net, x, idx)
    assert net.features[3].out_channels == 30 and net.features[7].in_channels == 30
    assert torch.allclose(net(x), before, atol=1e-5)  # removed channels carried nothing


@pytest.mark.parametrize("criterion", ["random", "l1", "l2", "bn_scale", "taylor"])
def test_criteria_deterministic(criterion):
    torch.manual_seed(0)
    net = DigitsCNN().eval()
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    units = find_units(net, x)
    a = channel_importance(net, units, criterion, seed=3, batches=[(x, y)])
    b = channel_importance(copy.deepcopy(net), units, criterion, seed=3, batches=[(x, y)])
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(a[u.name].shape == (u.channels,) for u in units)
    if criterion == "random":
        c = channel_importance(net, units, criterion, seed=4)
        assert not all(torch.equal(a[k], c[k]) for k in a)


def test_bad_inputs():
    net = DigitsCNN()
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match="unknown pruning criterion"):
        channel_importance(net, find_units(net, x), "hessian2")
    with pytest.raises(ValueError, match="calibration batches"):
        channel_importance(net, find_units(net, x), "taylor")
    with pytest.raises(ValueError, match="does not have"):
        apply_structure(net, {"nope.0": [3, 3]})
