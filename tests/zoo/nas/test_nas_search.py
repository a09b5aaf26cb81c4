"""Bilevel search: the second-order hypergradient against direct autograd, parameter groups, the search loop."""
import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F

from zoo.nas.search import BilevelSearchModule
from zoo.nas.search_net import SearchNetwork
from zoo.nas.unrolled import exact_unrolled_arch_grads, unrolled_arch_grads

PRIMS = ["skip_connect", "avg_pool_3x3", "sep_conv_3x3", "dil_conv_3x3"]


def _tiny():
    torch.manual_seed(0)
    net = SearchNetwork(C=4, num_classes=3, layers=2, steps=2, primitives=PRIMS, reductions=[1], alpha_init=0.5).double()
    g = torch.Generator().manual_seed(1)
    batch = lambda: (torch.rand(4, 3, 6, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (4,), generator=g))
    names = [n for n, _ in net.named_parameters()]
    arch = [n for n in names if n.startswith("alpha")]
    weights = [n for n in names if n not in arch]
    return net, weights, arch, batch(), batch()


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_second_order_matches_direct_autograd(momentum):
    net, w, a, train, val = _tiny()
    named = dict(net.named_parameters())
    bufs = [0.1 * torch.randn_like(named[n]) for n in w] if momentum else None
    kw = dict(xi=0.05, momentum=momentum, weight_decay=3e-4, momentum_buffers=bufs)
    # r = 1e-4 instead of the reference's 0.01: on a net this small a 0.01 step crosses ReLU kinks (float64 here)
    approx, _ = unrolled_arch_grads(net, w, a, train, val, F.cross_entropy, r=1e-4, **kw)
    exact = exact_unrolled_arch_grads(net, w, a, train, val, F.cross_entropy, **kw)
    first, _ = unrolled_arch_grads(net, w, a, train, val, F.cross_entropy, xi=0.0)
    for g_fd, g_ex, g_1 in zip(approx, exact, first):
        # the finite difference approximates the exact hypergradient far better than the first-order one does
        err = (g_fd - g_ex).norm() / g_ex.norm()
        assert err < 1e-6, err
        assert (g_1 - g_ex).norm() > 1e4 * (g_fd - g_ex).norm()


def test_first_order_is_the_plain_validation_gradient():
    net, w, a, train, val = _tiny()
    first, _ = unrolled_arch_grads(net, w, a, train, val, F.cross_entropy, xi=0.0)
    net.zero_grad()
    F.cross_entropy(net(val[0]), val[1]).backward()
    named = dict(net.named_parameters())
    for n, g in zip(a, first):
        assert torch.allclose(named[n].grad, g, atol=1e-10)


def test_arch_parameters_are_kept_out_of_the_weight_optimiser():
    m = BilevelSearchModule(C=4, layers=3, steps=2, reductions=[1, 2], edge_norm=True)
    (opt_w, opt_a), _ = m.configure_optimizers()
    w_ids = {id(p) for g in opt_w.param_groups for p in g["params"]}
    a_ids = {id(p) for g in opt_a.param_groups for p in g["params"]}
    assert a_ids == {id(p) for p in m.arch_parameters()} and len(a_ids) == 4  # alphas + PC-DARTS betas
    assert not (w_ids & a_ids) and len(w_ids) + len(a_ids) == len(list(m.parameters()))
    assert opt_a.defaults["betas"] == (0.5, 0.999) and opt_a.defaults["weight_decay"] == 1e-3


def _digits_batches(n=6):
    from zoo.nas.data import DigitsNASDataModule

    dm = DigitsNASDataModule(batch_size=32, search=True, corrupted=False)
    return dm


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kw", [dict(unrolled=True), dict(partial_channels=2, edge_norm=True), dict(weight_fn="gumbel")])
def test_search_variants_train_and_move_alpha(kw):
    pl.seed_everything(0, verbose=False)
    m = BilevelSearchModule(C=4, layers=3, steps=2, reductions=[1, 2], lr=0.05, arch_lr=3e-2,
                            primitives=["none", "skip_connect", "sep_conv_3x3", "max_pool_3x3"], **kw)
    before = [p.detach().clone() for p in m.arch_parameters()]
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=4, limit_val_batches=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(m, _digits_batches())
    moved = [float((p.detach() - b).abs().max()) for p, b in zip(m.arch_parameters(), before)]
    assert all(d > 1e-4 for d in moved)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert m.genotype().steps == 2


def test_search_batch_must_be_a_split():
    from zoo.nas.search import unpack_search_batch

    with pytest.raises(ValueError, match="SearchSplitDataModule"):
        unpack_search_batch((torch.zeros(1), torch.zeros(1)))
