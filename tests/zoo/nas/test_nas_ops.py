"""DARTS operations, the mixed op (softmax / sigmoid / Gumbel) and PC-DARTS partial channels."""
import pytest
import torch

from zoo.nas.mixed import MixedOp, channel_shuffle, mixing_weights
from zoo.nas.ops import DARTOPTI_PRIMITIVES, DARTS_PRIMITIVES, OPS, FactorizedReduce, build_op, register_op


@pytest.mark.parametrize("name", sorted(set(DARTS_PRIMITIVES) | set(DARTOPTI_PRIMITIVES)))
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_maps_c_to_c_and_halves_with_stride(name, stride):
    op = build_op(name, 8, stride, affine=False)
    out = op(torch.randn(2, 8, 8, 8))
    assert out.shape == (2, 8, 8 // stride, 8 // stride)


def test_parameter_counts_of_the_conv_ops():
    c = 16
    n = lambda m: sum(p.numel() for p in m.parameters())
    # sep_conv_3x3 = 2 x (depthwise 3x3 + pointwise + BN affine): 2 * (9c + c^2 + 2c)
    assert n(OPS["sep_conv_3x3"](c, 1, True)) == 2 * (9 * c + c * c + 2 * c)
    assert n(OPS["dil_conv_5x5"](c, 1, True)) == 25 * c + c * c + 2 * c
    assert n(OPS["skip_connect"](c, 2, True)) == 2 * (c * c // 2) + 2 * c
    assert n(OPS["none"](c, 1, True)) == 0 and n(OPS["max_pool_3x3"](c, 1, True)) == 0


def test_search_pools_carry_a_non_affine_bn_and_none_is_zero():
    pool = build_op("avg_pool_3x3", 4, 1, affine=False, search=True)
    assert isinstance(pool[1], torch.nn.BatchNorm2d) and not pool[1].affine
    assert build_op("none", 4, 2, False)(torch.randn(1, 4, 6, 6)).abs().sum() == 0


def test_factorized_reduce_handles_odd_sizes_and_unknown_ops_are_refused():
    assert FactorizedReduce(4, 6)(torch.randn(1, 4, 7, 7)).shape == (1, 6, 4, 4)
    with pytest.raises(ValueError, match="unknown operation"):
        build_op("conv_9x9", 4, 1, True)
    with pytest.raises(ValueError, match="already registered"):
        register_op("sep_conv_3x3", OPS["sep_conv_3x3"])


def test_mixed_op_is_the_weighted_sum_of_its_ops():
    torch.manual_seed(0)
    prims = ["max_pool_3x3", "skip_connect", "sep_conv_3x3"]
    op = MixedOp(4, 1, prims).eval()
    x, alpha = torch.randn(2, 4, 6, 6), torch.randn(3)
    w = mixing_weights(alpha, "softmax")
    assert torch.isclose(w.sum(), torch.tensor(1.0))
    expected = sum(wi * o(x) for wi, o in zip(w, op.ops))
    assert torch.allclose(op(x, w), expected)
    s = mixing_weights(alpha, "sigmoid")
    assert torch.allclose(s, torch.sigmoid(alpha))


def test_gumbel_mixed_op_computes_one_path_with_straight_through_gradient():
    torch.manual_seed(0)
    prims = ["skip_connect", "sep_conv_3x3", "dil_conv_3x3"]
    op = MixedOp(4, 1, prims, weight_fn="gumbel").eval()
    alpha = torch.zeros(3, requires_grad=True)
    w = mixing_weights(alpha, "gumbel", tau=1.0)
    assert sorted(w.detach().tolist()) == [0.0, 0.0, 1.0]
    x = torch.randn(1, 4, 5, 5)
    out = op(x, w)
    k = int(w.argmax())
    assert torch.allclose(out, op.ops[k](x))
    out.sum().backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0


def test_partial_channels_pass_one_kth_through_the_ops_and_shuffle():
    torch.manual_seed(0)
    op = MixedOp(8, 1, ["skip_connect"], partial_channels=4).eval()
    x = torch.randn(1, 8, 4, 4)
    out = op(x, torch.ones(1))
    assert out.shape == x.shape
    # skip on the sampled quarter = identity, so the result is a channel permutation of x
    assert torch.allclose(out, channel_shuffle(x, 4))
    assert channel_shuffle(torch.arange(8.0).view(1, 8, 1, 1), 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    strided = MixedOp(8, 2, ["sep_conv_3x3", "max_pool_3x3"], partial_channels=4)
    assert strided(x, torch.ones(2)).shape == (1, 8, 2, 2)
    assert sum(p.numel() for p in strided.parameters()) < sum(
        p.numel() for p in MixedOp(8, 2, ["sep_conv_3x3", "max_pool_3x3"]).parameters())
