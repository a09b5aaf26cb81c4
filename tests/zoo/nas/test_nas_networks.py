"""Evaluation networks: exact parameter/MAC counts of the published genotypes (spec tables), cells, deepening."""
import pytest
import torch

from zoo.core.profiling import count_macs, count_params
from zoo.nas.cells import DartsNetwork, DiscreteCell, drop_path
from zoo.nas.ddarts.deepen import deepen_layout
from zoo.nas.published import DDARTS_SPARSE_CIFAR10

# (genotype, layers, C, classes, stem, input size, params, MACs) from the DARTS spec section 7 and the D-DARTS
# spec section 8 (auxiliary head excluded). The D-DARTS counts were measured on the reference model code,
# i.e. with the reference layout; its CIFAR-100 row was counted with a 10-class classifier.
TABLE = [
    ("DARTS_V2", 20, 36, 10, "cifar", 32, False, 3.349, 528),
    ("DARTS_V1", 20, 36, 10, "cifar", 32, False, 3.169, 501),
    ("DARTS_V2", 14, 48, 1000, "imagenet", 224, False, 4.719, 530),
    ("DDARTS_SPARSE_CIFAR10", 8, 36, 10, "cifar", 32, True, 1.244, 255),
    ("DDARTS_SPARSE_CIFAR10", 14, 24, 10, "cifar", 32, True, 1.791, 184),
    ("DDARTS_SPARSE_CIFAR10", 20, 36, 10, "cifar", 32, True, 6.425, 562),
    ("DDARTS_EDGE_CIFAR10", 14, 16, 10, "cifar", 32, True, 1.734, 187),
    ("DDARTS_SPARSE_CIFAR100", 8, 36, 10, "cifar", 32, True, 1.307, 258),
    ("DDARTS_SPARSE_CIFAR100", 20, 36, 10, "cifar", 32, True, 6.460, 566),
]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name,layers,C,classes,stem,size,ref,params_m,macs_m", TABLE)
def test_paper_parameter_and_mac_counts(name, layers, C, classes, stem, size, ref, params_m, macs_m):
    with torch.device("meta"):
        net = DartsNetwork(name, C=C, layers=layers, num_classes=classes, stem=stem, reference_layout=ref)
    assert round(count_params(net) / 1e6, 3) == params_m
    assert round(count_macs(net, torch.zeros(1, 3, size, size, device="meta")) / 1e6) == macs_m


def test_registered_builders_and_forward_with_auxiliary():
    import zoo

    net = zoo.create_model("darts_v2_cifar10", C=8, layers=5, auxiliary=True, drop_path_prob=0.2)
    net.train()
    logits, aux = net.forward_with_aux(torch.randn(2, 3, 32, 32))
    assert logits.shape == aux.shape == (2, 10)
    net.eval()
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10) and net.forward_with_aux(torch.randn(1, 3, 32, 32))[1] is None
    assert net.forward_head(net.forward_features(torch.randn(1, 3, 32, 32)), pre_logits=True).shape == (1, net.num_features)


def test_variable_in_degree_cell_drops_empty_nodes():
    edges = [("skip_connect", 2, 0), ("sep_conv_3x3", 2, 1), ("max_pool_3x3", 2, 1), ("dil_conv_3x3", 4, 2)]
    cell = DiscreteCell(edges, 8, 8, 4, reduction=False, reduction_prev=False, drop_path_mode="node")
    assert cell.nodes == [2, 4] and cell.multiplier == 2 and len(cell.ops) == 4
    assert cell(torch.randn(1, 8, 6, 6), torch.randn(1, 8, 6, 6)).shape == (1, 8, 6, 6)
    red = DiscreteCell(edges, 8, 8, 4, reduction=True, reduction_prev=False)
    assert red(torch.randn(1, 8, 6, 6), torch.randn(1, 8, 6, 6)).shape == (1, 8, 3, 3)


def test_drop_path_zeroes_whole_samples_and_keeps_the_mean():
    torch.manual_seed(0)
    x = torch.ones(4000, 1, 2, 2)
    y = drop_path(x, 0.2)
    per_sample = y.flatten(1)
    assert set(per_sample[:, 0].unique().tolist()) == {0.0, 1.25}
    assert abs(float(y.mean()) - 1.0) < 0.05
    assert torch.equal(drop_path(x, 0.0), x)


def test_deepening_reference_layout_reproduces_the_spec_table():
    # D-DARTS spec section 5: the code's gene per layer for G=8 -> L and G=5 -> 8
    assert deepen_layout(DDARTS_SPARSE_CIFAR10, 8, True) == (list(range(8)), [2, 6])
    assert deepen_layout(DDARTS_SPARSE_CIFAR10, 14, True)[0] == [0, 0, 0, 1, 2, 4, 3, 4, 3, 5, 6, 7, 6, 7]
    assert deepen_layout(DDARTS_SPARSE_CIFAR10, 20, True) == (
        [0, 0, 0, 1, 1, 1, 2, 4, 3, 4, 3, 4, 3, 5, 6, 7, 6, 7, 6, 7], [2, 6])
    from zoo.nas.genotype import NestedGenotype

    five = NestedGenotype([[("skip_connect", 2, 0)]] * 5, reductions=[1, 3])
    assert deepen_layout(five, 8, True)[0] == [0, 0, 1, 2, 2, 3, 4, 4]
    assert deepen_layout(five, 8, False) == ([0, 0, 1, 2, 2, 3, 4, 4], [2, 5])


def test_deepening_zoo_layout_keeps_stages_and_strides_at_thirds():
    layout, reds = deepen_layout(DDARTS_SPARSE_CIFAR10, 14)
    assert reds == [4, 9] and layout[4] == 2 and layout[9] == 6
    assert layout == [0, 1, 0, 1, 2, 3, 4, 5, 3, 6, 7, 7, 7, 7]
    net = DartsNetwork(DDARTS_SPARSE_CIFAR10, C=4, layers=20)
    assert [i for i, c in enumerate(net.cells) if c.reduction] == [6, 13]
    assert net(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match="cannot build 5 layers"):
        deepen_layout(DDARTS_SPARSE_CIFAR10, 5)
    from zoo.nas.genotype import NestedGenotype

    with pytest.raises(ValueError, match="at most 2 reduction"):
        deepen_layout(NestedGenotype([[("skip_connect", 2, 0)]] * 6, reductions=[1, 2, 3]), 9)


def _aux_params(c_aux: int, classes: int, final_bn: bool) -> int:
    """quark0/darts AuxiliaryHead*: 1x1 conv c->128, BN(128), 2x2 conv 128->768, [BN(768)], Linear(768, classes)."""
    return c_aux * 128 + 2 * 128 + 128 * 768 * 4 + (2 * 768 if final_bn else 0) + 768 * classes + classes


def test_auxiliary_heads_follow_the_references():
    from zoo.nas.cells import AuxiliaryHead
    from zoo.nas.genotype import NestedGenotype

    with torch.device("meta"):  # DARTS V2 ImageNet: the head sits after the second reduction, 4 nodes x 4C channels
        imnet = DartsNetwork("DARTS_V2", C=48, layers=14, num_classes=1000, stem="imagenet", auxiliary=True)
        cifar = DartsNetwork("DARTS_V2", C=36, layers=20, num_classes=10, auxiliary=True)
        ddarts = DartsNetwork(DDARTS_SPARSE_CIFAR10, C=36, layers=8, num_classes=10, stem="imagenet", auxiliary=True)
    def bn768(head):
        return [m for m in head.modules() if isinstance(m, torch.nn.BatchNorm2d) and m.num_features == 768]

    assert bn768(imnet.auxiliary_head) == []  # commented out in quark0/darts model.py AuxiliaryHeadImageNet
    assert count_params(imnet.auxiliary_head) == _aux_params(4 * 4 * 48, 1000, False)
    assert len(bn768(cifar.auxiliary_head)) == 1
    assert count_params(cifar.auxiliary_head) == _aux_params(4 * 4 * 36, 10, True)
    assert isinstance(ddarts.genotype, NestedGenotype) and len(bn768(ddarts.auxiliary_head)) == 1  # D-DARTS keeps it
    # the published counts leave the head out (quark0/darts utils.count_parameters_in_MB skips "auxiliary")
    assert round((count_params(imnet) - count_params(imnet.auxiliary_head)) / 1e6, 3) == 4.719
    assert len(bn768(AuxiliaryHead(8, 10, imagenet=True, final_bn=True))) == 1  # the switch
