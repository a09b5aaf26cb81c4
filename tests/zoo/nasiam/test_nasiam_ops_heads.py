"""NASiam search space: the seven MLP ops with the authors' dimension rules, mixed layers, chains, genotypes."""
import json

import pytest
import torch
from torch import nn

from zoo.nasiam import (MLP_PRIMITIVES, PUBLISHED, FixedChain, HeadGenotype, MLPMixedOp, SearchChain, build_mlp_op,
                        resolve_head)
from zoo.nasiam.ops import FeaturePool


@pytest.mark.parametrize("op", MLP_PRIMITIVES)
@pytest.mark.parametrize("dims", [(16, 16), (16, 8), (8, 16)])
def test_every_op_maps_in_dim_to_out_dim_with_correct_batchnorm(op, dims):
    torch.manual_seed(0)
    m = build_mlp_op(op, *dims)
    assert m(torch.randn(5, dims[0])).shape == (5, dims[1])
    for bn in (x for x in m.modules() if isinstance(x, nn.BatchNorm1d)):
        assert bn.num_features == dims[1] and bn.eps == 1e-5  # the MoCo code passed out_dim as eps (defect 5)


def test_dimension_rules_of_the_authors_code():
    # up-projection: identity and the four linear_* ops are the same function (a plain Linear with bias)
    for op in ("identity", "linear_relu", "linear_silu", "linear_hardswish", "linear_elu"):
        m = build_mlp_op(op, 4, 8)
        assert isinstance(m, nn.Linear) and m.bias is not None
    # down-projection: identity is Linear(no bias)-BN-ReLU, the same structure as linear_relu
    ident, relu = build_mlp_op("identity", 8, 4), build_mlp_op("linear_relu", 8, 4)
    assert [type(x) for x in ident] == [type(x) for x in relu] == [nn.Linear, nn.BatchNorm1d, nn.ReLU]
    assert ident[0].bias is None
    assert isinstance(build_mlp_op("identity", 8, 8), nn.Identity)
    assert isinstance(build_mlp_op("linear_elu", 8, 8)[2], nn.ELU)
    assert [type(x) for x in build_mlp_op("avgpool_3x3", 8, 8)] == [FeaturePool, nn.BatchNorm1d]
    assert [type(x) for x in build_mlp_op("maxpool_3x3", 4, 8)] == [nn.Linear, FeaturePool, nn.BatchNorm1d]
    with pytest.raises(ValueError, match="unknown NASiam operation"):
        build_mlp_op("linear_mish", 4, 4)


def test_feature_pool_smooths_neighbouring_features():
    x = torch.tensor([[1.0, 2.0, 6.0, 0.0]])
    torch.testing.assert_close(FeaturePool("max")(x), torch.tensor([[2.0, 6.0, 6.0, 6.0]]))
    # average with zero padding counted (count_include_pad, the PyTorch default of the reference code)
    torch.testing.assert_close(FeaturePool("avg")(x), torch.tensor([[1.0, 3.0, 8.0 / 3, 2.0]]))


def test_mixed_op_is_the_weighted_sum_of_its_ops():
    torch.manual_seed(0)
    m = MLPMixedOp(6, 6).eval()
    x, w = torch.randn(4, 6), torch.softmax(torch.randn(7), 0)
    torch.testing.assert_close(m(x, w), sum(wi * op(x) for wi, op in zip(w, m.ops)))
    with pytest.raises(ValueError, match="7 ops but got 3"):
        m(x, torch.ones(3))


def test_search_chain_alpha_is_a_zero_initialised_parameter_and_argmax_derives():
    chain = SearchChain([8, 8, 4, 8])
    assert isinstance(chain.alpha, nn.Parameter) and "alpha" in chain.state_dict()
    assert chain.alpha.shape == (3, 7) and chain.alpha.abs().sum() == 0
    torch.testing.assert_close(chain.mixing_weights(), torch.full((3, 7), 1 / 7))
    assert chain.genotype().ops == ["maxpool_3x3"] * 3  # ties go to the first op, as torch.argmax
    with torch.no_grad():
        chain.alpha[0, 4] = 1.0
        chain.alpha[2, 6] = 2.0
    assert chain.genotype().ops == ["linear_silu", "maxpool_3x3", "linear_elu"]
    out = chain(torch.randn(5, 8))
    out.sum().backward()
    assert out.shape == (5, 8) and chain.alpha.grad is not None and chain.alpha.grad.abs().sum() > 0


def test_fixed_chain_and_genotype_round_trip(tmp_path):
    geno = HeadGenotype.from_dict({"type": "HeadGenotype", "projector": ["identity", "linear_elu"],
                                   "predictor": ["avgpool_3x3"]})
    path = tmp_path / "g.json"
    path.write_text(json.dumps(geno.to_dict()))
    assert HeadGenotype.load(path) == geno == resolve_head(str(path))
    chain = FixedChain([8, 8, 8], geno.projector.ops)
    assert isinstance(chain[0], nn.Identity) and isinstance(chain[1][2], nn.ELU)
    with pytest.raises(ValueError, match="needs 2 ops"):
        FixedChain([8, 8, 8], ["identity"])
    with pytest.raises(ValueError, match="HeadGenotype"):
        HeadGenotype.from_dict({"type": "ChainGenotype", "ops": ["identity"]})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="line 1"):
        HeadGenotype.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError):
        HeadGenotype.load(tmp_path / "missing.json")


def test_published_genotypes_have_the_spec_layer_counts():
    for name, g in PUBLISHED.items():
        n_proj = len(g.projector.ops)
        if name.startswith("simsiam"):
            assert n_proj == 6 and len(g.predictor.ops) == 4
        elif name.startswith("moco"):
            assert n_proj == 4 and g.predictor is None
        elif name.startswith("simclr"):
            assert n_proj == 6 and g.predictor is None
        assert all(op in MLP_PRIMITIVES for op in g.projector.ops + (g.predictor.ops if g.predictor else []))
    assert PUBLISHED["moco_cifar10_resnet18"].projector.ops == ["avgpool_3x3"] * 4
    with pytest.raises(ValueError, match="unknown NASiam head"):
        resolve_head("simsiam_imagenet")
