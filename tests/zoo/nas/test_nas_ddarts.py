"""D-DARTS: zero-one and ablation losses, per-cell optimisers, clean vs reference gradient bookkeeping."""
import pytest
import torch
import torch.nn.functional as F

from zoo.nas.ddarts.losses import ablation_loss, marginal_contributions, zero_one_loss
from zoo.nas.ddarts.search import DDartsSearchModule

PRIMS = ["max_pool_3x3", "skip_connect", "sep_conv_3x3"]


class Recorder:
    """Stands in for an optimiser: records the gradient seen at each step."""

    def __init__(self, params):
        self.params, self.seen = list(params), []

    def step(self):
        self.seen.append([None if p.grad is None else p.grad.clone() for p in self.params])

    def zero_grad(self):
        for p in self.params:
            p.grad = None


def _module(**kw):
    torch.manual_seed(0)
    m = DDartsSearchModule(C=4, layers=3, steps=2, reductions=[1, 2], primitives=PRIMS, **kw)
    with torch.no_grad():
        for a in m.net.alphas:
            a.normal_(0, 1)  # away from 0, where the zero-one loss has no gradient
    x, y = torch.rand(8, 3, 8, 8), torch.randint(0, 10, (8,))
    return m, x, y


def test_zero_one_and_ablation_losses_by_hand():
    a = torch.tensor([[0.0, 10.0], [-10.0, 0.0]])
    assert torch.isclose(zero_one_loss(a), -torch.tensor(0.25 * 2 / 4), atol=1e-4)
    assert torch.allclose(ablation_loss(torch.tensor([1.0, 3.0])), torch.tensor([0.5, -0.5]))
    assert torch.equal(ablation_loss(torch.zeros(3)), torch.zeros(3))


def test_marginal_contributions_restore_the_network():
    m, x, y = _module()
    m.eval()
    before = m.net(x)
    mc = marginal_contributions(m.net, x, y, F.cross_entropy)
    assert mc.shape == (3,) and not mc.requires_grad
    assert m.net.deactivated is None and torch.allclose(m.net(x), before)


def _expected(m, x, y):
    ce = F.cross_entropy(m.net(x), y)
    alphas = list(m.net.alphas)
    g_ce = torch.autograd.grad(ce, alphas)
    g_01 = [torch.autograd.grad(9.0 * zero_one_loss(a), a)[0] for a in alphas]
    g_w = torch.autograd.grad(F.cross_entropy(m.net(x), y), m.weight_parameters(), allow_unused=True)
    return g_ce, g_01, g_w


def test_clean_mode_gives_each_cell_its_own_gradient():
    m, x, y = _module()
    g_ce, g_01, _ = _expected(m, x, y)
    w_opt, cells = Recorder(m.weight_parameters()), [Recorder([a]) for a in m.net.alphas]
    m.alpha_phase(x, y, w_opt, cells, torch.zeros(3))
    for c, rec in enumerate(cells):
        assert torch.allclose(rec.seen[0][0], g_ce[c] + g_01[c], atol=1e-6)
    assert all(p.grad is None for p in m.weight_parameters())  # weights left clean for their own step


def test_reference_quirks_leak_gradients_as_the_reference_code_does():
    m, x, y = _module(reference_quirks=True)
    g_ce, g_01, g_w = _expected(m, x, y)
    w_opt, cells = Recorder(m.weight_parameters()), [Recorder([a]) for a in m.net.alphas]
    m.alpha_phase(x, y, w_opt, cells, torch.zeros(3))
    for c, rec in enumerate(cells):  # (b): alpha_c collects (c + 1) copies of the CE gradient
        assert torch.allclose(rec.seen[0][0], (c + 1) * g_ce[c] + g_01[c], atol=1e-5)
    leaked = [p.grad for p in m.weight_parameters()]
    for got, one in zip(leaked, g_w):  # (a): weights keep L copies of the alpha-half gradient
        if one is not None:
            assert torch.allclose(got, 3 * one, atol=1e-5)


def test_one_optimiser_and_scheduler_per_cell():
    m, _, _ = _module()
    opts, scheds = m.configure_optimizers()
    assert len(opts) == 1 + 3 and len(scheds) == 4
    assert [list(o.param_groups[0]["params"]) for o in opts[1:]] == [[a] for a in m.net.alphas]
    assert opts[1].defaults["lr"] == 3e-3 and opts[1].defaults["betas"] == (0.9, 0.999)
    g = m.genotype()
    assert len(g.genes) == 3 and g.reductions == [1, 2]


@pytest.mark.timeout(300)
def test_ablation_search_runs_under_a_trainer():
    import lightning.pytorch as pl

    from zoo.nas.data import DigitsNASDataModule

    pl.seed_everything(0, verbose=False)
    m = DDartsSearchModule(C=4, layers=3, steps=2, reductions=[1, 2], primitives=PRIMS, ablation=True, lr=0.05)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(m, DigitsNASDataModule(batch_size=32))
    assert "search/ablation_loss" in trainer.callback_metrics
    assert all(float(a.detach().abs().max()) > 0 for a in m.net.alphas)  # every cell moved its alpha away from the 0 init


@pytest.mark.parametrize("layers,reductions", [(3, [1, 2]), (5, [1, 3])])
def test_weight_step_zero_one_term_is_the_reference_mse_over_stacked_alphas(layers, reductions):
    """aheuillet/D-DARTS train_search.py: CE + w * -F.mse_loss(sigmoid(model.arch_parameters()), 0.5), where
    arch_parameters() stacks every cell's alpha into one (cells, edges, ops) tensor: one mean, not a sum over cells."""
    torch.manual_seed(layers)
    m = DDartsSearchModule(C=4, layers=layers, steps=2, reductions=reductions, primitives=PRIMS)
    with torch.no_grad():
        for a in m.net.alphas:
            a.normal_(0, 2)
    alphas = list(m.net.alphas)
    logits, y = torch.randn(6, 10), torch.randint(0, 10, (6,))
    ref = F.cross_entropy(logits, y) + 9.0 * -F.mse_loss(torch.sigmoid(torch.stack(alphas)), torch.tensor(0.5))
    got = m.weight_loss(logits, y)
    assert torch.allclose(got, ref, atol=1e-6)
    summed = F.cross_entropy(logits, y) + 9.0 * sum(zero_one_loss(a) for a in alphas)
    assert not torch.allclose(got, summed, atol=1e-3)  # the per-cell sum the quirk mode used to add differs
    g_ref = torch.autograd.grad(ref, alphas)
    g_got = torch.autograd.grad(m.weight_loss(logits, y), alphas)  # the gradient left on alpha under reference_quirks
    for a, b in zip(g_got, g_ref):
        assert torch.allclose(a, b, atol=1e-7)
