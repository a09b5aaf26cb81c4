"""MRS (Bai et al. 2024) and its ratio allocation: hard properties of spec section 8."""
from __future__ import annotations

import pytest
import torch

from zoo.core.resnet_cifar import resnet18_cifar
from zoo.core.structured_pruning import ParamCounter, find_units, uniform_ratio, uniform_ratios
from zoo.robust_pruning import mrs as mrs_mod
from zoo.robust_pruning.allocation import achieved_sparsity, mrs_ratios
from zoo.robust_pruning.mrs import adversarial_calibration_set, cached_mrs, module_robust_sensitivity
from zoo.robust_pruning.net import DigitsCNN


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    net = DigitsCNN().eval()
    x = torch.rand(64, 1, 8, 8)
    y = torch.randint(0, 10, (64,))
    x_adv = adversarial_calibration_set(net, x, y, eps=0.1, alpha=0.025, steps=3)
    return net, x, y, x_adv


def test_calibration_set_in_ball(setup):
    net, x, y, x_adv = setup
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1


def test_mrs_nonnegative_within_radius_and_restores(setup):
    net, _, y, x_adv = setup
    before = {k: v.clone() for k, v in net.state_dict().items()}
    norms: dict[str, float] = {}
    scores = module_robust_sensitivity(net, x_adv, y, radius=0.1, ascent_steps=3, batch_size=32, norms=norms)
    assert set(scores) == {"features.0", "features.3", "features.7", "features.10", "fc1", "head"}
    assert all(v >= 0 for v in scores.values())
    assert max(scores.values()) > 0  # ascent really increased the adversarial loss somewhere
    assert all(0 < n <= 0.1 + 1e-5 for n in norms.values()), norms
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.requires_grad for p in net.parameters())


def test_mrs_grows_with_radius(setup):
    net, _, y, x_adv = setup
    small = module_robust_sensitivity(net, x_adv, y, ["fc1"], radius=0.02, ascent_steps=3, lr=100.0)
    large = module_robust_sensitivity(net, x_adv, y, ["fc1"], radius=0.3, ascent_steps=3, lr=100.0)
    assert large["fc1"] > small["fc1"] >= 0


def test_mrs_cache_is_reused(setup, tmp_path, monkeypatch):
    net, _, y, x_adv = setup
    first = cached_mrs(net, x_adv, y, tmp_path, layers=["fc1"], ascent_steps=2)
    assert len(list(tmp_path.glob("mrs-*.json"))) == 1
    monkeypatch.setattr(mrs_mod, "module_robust_sensitivity", lambda *a, **k: pytest.fail("cache not used"))
    assert cached_mrs(net, x_adv, y, tmp_path, layers=["fc1"], ascent_steps=2) == pytest.approx(first)


@pytest.mark.parametrize("sparsity,delta,p_max", [(0.5, 0.5, 0.9), (0.7, 0.3, 0.8)])
def test_allocation_budget_bounds_and_order(sparsity, delta, p_max):
    net = DigitsCNN()
    x = torch.rand(1, 1, 8, 8)
    counter = ParamCounter(net, x, find_units(net, x))
    scores = {"features.3": 4.0, "features.7": 1.0, "features.10": 0.5, "fc1": 2.0}
    ratios = mrs_ratios(counter, scores, sparsity, delta=delta, p_max=p_max)
    assert achieved_sparsity(counter, ratios) == pytest.approx(sparsity, abs=0.01)
    uniform = uniform_ratios(counter, sparsity)
    assert achieved_sparsity(counter, uniform) == pytest.approx(sparsity, abs=0.01)
    assert counter.count(ratios) == pytest.approx(counter.count(uniform), rel=0.01)  # equal budgets
    p_u = uniform_ratio(counter, sparsity)
    lo, hi = p_u * (1 - delta), min(p_max, p_u * (1 + delta))
    chans = {u.name: u.channels for u in counter.units}  # refinement may move one channel past a bound
    assert all(lo - 1 / chans[k] - 1e-9 <= r <= hi + 1 / chans[k] + 1e-9 for k, r in ratios.items())
    coarse = mrs_ratios(counter, scores, sparsity, delta=delta, p_max=p_max, refine=False)
    assert all(lo - 1e-9 <= r <= hi + 1e-9 for r in coarse.values())
    order = sorted(scores, key=scores.get)  # lower MRS -> pruned at least as much
    assert all(coarse[a] >= coarse[b] - 1e-9 for a, b in zip(order, order[1:]))
    assert coarse["features.3"] < coarse["features.10"]


def test_macs_budget_and_coupled_units_take_min():
    net = resnet18_cifar(width=8)
    x = torch.rand(1, 3, 32, 32)
    units = find_units(net, x, coupled=True)
    coupled = [u for u in units if len(u.members) > 1]
    assert coupled and all(len(u.members) >= 2 for u in coupled)
    counter = ParamCounter(net, x, units)
    members = [m for u in units for m in u.members]
    scores = {m: 1.0 + i for i, m in enumerate(members)}
    ratios = mrs_ratios(counter, scores, 0.5, budget="macs", delta=0.5, p_max=0.9)
    assert achieved_sparsity(counter, ratios, "macs") == pytest.approx(0.5, abs=0.01)
    alone = mrs_ratios(ParamCounter(net, x, units), {**scores}, 0.5, budget="macs", delta=0.5, p_max=0.9)
    assert ratios == alone
    u = coupled[0]  # a coupled group gets the ratio of its most sensitive member (the smallest ratio)
    assert ratios[u.name] <= min(ratios.get(m, 1.0) for m in u.members if m in ratios)


def test_missing_scores_and_unreachable_budget():
    net = DigitsCNN()
    x = torch.rand(1, 1, 8, 8)
    counter = ParamCounter(net, x, find_units(net, x))
    with pytest.raises(ValueError, match="missing"):
        mrs_ratios(counter, {"fc1": 1.0}, 0.5)
    with pytest.raises(ValueError, match="out of reach"):
        uniform_ratio(counter, 0.999)


def test_normalized_ascent_reaches_the_ball_boundary(setup):
    net, _, y, x_adv = setup
    norms: dict[str, float] = {}
    scores = module_robust_sensitivity(net, x_adv, y, ["features.3", "fc1"], radius=0.1, ascent_steps=3, lr=0.5,
                                       ascent="normalized", norms=norms)
    assert all(v >= 0 for v in scores.values())
    assert all(0.09 <= n <= 0.1 + 1e-5 for n in norms.values()), norms
