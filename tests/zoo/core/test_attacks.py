"""FGSM / PGD / CW-inf / AutoAttack: budgets, valid range, strength ordering, robust accuracy vs eps."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from datamodules.digits import load_digits_tensors
from zoo.core.attacks import accuracy, autoattack, cw_inf, fgsm, parse_attack, pgd, robust_accuracy
from zoo.quickstart.net import SmallCNN


@pytest.fixture(scope="module")
def trained():
    """A SmallCNN trained naturally on digits for a few epochs (~2 s), and 128 held-out images."""
    torch.manual_seed(0)
    x, y = load_digits_tensors()
    perm = torch.randperm(len(y))
    xtr, ytr, xte, yte = x[perm[:1400]], y[perm[:1400]], x[perm[1600:1728]], y[perm[1600:1728]]
    net = SmallCNN(width=16, drop_rate=0.0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(8):
        for i in range(0, len(ytr), 64):
            opt.zero_grad()
            F.cross_entropy(net(xtr[i:i + 64]), ytr[i:i + 64]).backward()
            opt.step()
    net.zero_grad(set_to_none=True)
    net.eval()
    return net, xte, yte


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_stays_in_ball_and_range(trained, norm):
    net, x, y = trained
    eps = 0.1 if norm == "linf" else 0.5
    x_adv = pgd(net, x, y, eps=eps, alpha=eps / 4, steps=7, norm=norm)
    d = (x_adv - x).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert size.max() <= eps + 1e-5
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert size.max() > 0.5 * eps  # it really moved


def test_fgsm_and_cw_budget(trained):
    net, x, y = trained
    for x_adv in (fgsm(net, x, y, 0.05), cw_inf(net, x, y, 0.05, 0.01, steps=5)):
        assert (x_adv - x).abs().max() <= 0.05 + 1e-6
        assert 0 <= x_adv.min() and x_adv.max() <= 1


def test_pgd_loss_at_least_fgsm(trained):
    net, x, y = trained
    with torch.no_grad():
        l_fgsm = F.cross_entropy(net(fgsm(net, x, y, 0.1)), y).item()
        l_pgd = F.cross_entropy(net(pgd(net, x, y, 0.1, 0.025, steps=20)), y).item()
        l_clean = F.cross_entropy(net(x), y).item()
    assert l_pgd >= l_fgsm > l_clean


def test_robust_accuracy_falls_with_eps(trained):
    net, x, y = trained
    accs = [robust_accuracy(net, x, y, lambda m, a, b, e=e: pgd(m, a, b, e, e / 4, 10)) for e in (0.0, 0.03, 0.1, 0.2)]
    assert accs[0] == pytest.approx(accuracy(net, x, y))
    assert accs[0] > 0.9
    assert all(a >= b for a, b in zip(accs, accs[1:])), accs
    assert accs[-1] < accs[0] - 0.3, accs


def test_attack_keeps_model_state(trained):
    net, x, y = trained
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    pgd(net, x[:8], y[:8], 0.1, 0.02, 3)
    assert net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())
    net.eval()


def test_parse_attack_names():
    s = parse_attack("pgd20", 8 / 255)
    assert (s.kind, s.steps, s.norm) == ("pgd", 20, "linf") and s.alpha == pytest.approx(2 / 255)
    assert parse_attack("pgd10_l2", 0.5).norm == "l2"
    assert parse_attack("cw", 0.03).steps == 30
    with pytest.raises(ValueError, match="unknown attack"):
        parse_attack("deepfool", 0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pgd(torch.nn.Identity(), torch.full((1, 3), 2.0), torch.zeros(1, dtype=torch.long), 0.1, 0.01, 1)


@pytest.mark.timeout(300)
def test_autoattack_at_most_pgd(trained):
    import pyautoattack  # noqa: F401  (in the test extra: a missing install must fail, not skip)
    net, x, y = trained
    x, y = x[:48], y[:48]
    x_adv = autoattack(net, x, y, eps=0.05)
    assert (x_adv - x).abs().max() <= 0.05 + 1e-5
    aa = accuracy(net, x_adv, y)
    pg = robust_accuracy(net, x, y, lambda m, a, b: pgd(m, a, b, 0.05, 0.0125, 20))
    assert aa <= pg + 1 / 48
