"""RRR-Net networks: counts of the real ResNet152 (meta device), shift calibration, reduction, weight slicing."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

from zoo.backbone_reduction.build import build_rrrnet
from zoo.backbone_reduction.nets import (
    BottleneckResNet, calibrate_shift, count_branch_params, ensemble_log_probs, reduce_resnet,
)
from zoo.backbone_reduction.split import split_resnet
from zoo.core.profiling import count_macs, count_params

# ResNet152's stage depths at 1/8 width; the spec's [3, 3, 3, 3] makes params([C]) / params([B]) = 1 / 2.46,
# so its own "< 1/3" assertion cannot hold there (see docs/backbone_reduction.md)
MINI = dict(layers=[3, 8, 36, 3], planes=[8, 16, 32, 64], stem="cifar")


def mini_net(num_classes: int = 5, seed: int = 0) -> BottleneckResNet:
    torch.manual_seed(seed)
    net = BottleneckResNet(num_classes=num_classes, **MINI)
    for m in net.modules():  # non-trivial BN statistics so copies and re-inits are distinguishable
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    return net.eval()


def test_state_dict_keys_match_torchvision_resnet152():
    with torch.device("meta"):
        ours = BottleneckResNet(num_classes=1000)
        tv = ResNet(Bottleneck, [3, 8, 36, 3])
    ours_sd, tv_sd = ours.state_dict(), tv.state_dict()
    assert set(ours_sd) == set(tv_sd)
    assert all(ours_sd[k].shape == tv_sd[k].shape for k in tv_sd)


def test_model_card_counts_match_the_spec():
    """Spec section 5: 58.18 M / 3.76 G (full), 8.06 M / 0.479 G ([C]), 8.03 M / 0.546 G ([D], B = 8) at 128x128."""
    with torch.device("meta"):
        full, c, d = (build_rrrnet(20, nb_blocks=None), build_rrrnet(20), build_rrrnet(20, num_branches=8))
    got = {n: (count_params(m) / 1e6, count_macs(m, (1, 3, 128, 128)) / 1e9) for n, m in
           (("full", full), ("C", c), ("D", d))}
    for name, (params_m, macs_g) in {"full": (58.18, 3.76), "C": (8.06, 0.479), "D": (8.03, 0.546)}.items():
        assert round(got[name][0], 2) == params_m, name
        assert round(got[name][1], 2 if name == "full" else 3) == macs_g, name
    assert got["full"][0] / got["C"][0] > 6 and got["full"][1] / got["C"][1] > 6
    with torch.device("meta"):
        imagenet = build_rrrnet(1000, nb_blocks=None)
    assert count_params(imagenet) == 60_192_808  # torchvision's ResNet152 count


@pytest.mark.parametrize("classes,table", [
    (20, {1: (0, 256, 512), 2: (6, 175, 356), 4: (9, 119, 247), 8: (11, 79, 170), 16: (13, 51, 115)}),
    (62, {1: (0, 256, 512), 2: (6, 175, 356), 4: (10, 118, 246), 8: (13, 77, 168), 16: (14, 50, 114)}),
])
def test_shift_reproduces_the_authors_lookup_table(classes, table):
    for b, (shift, p3, p4) in table.items():
        assert calibrate_shift([64, 128, 256, 512], [1, 1, 1, 1], b, classes) == shift
        assert (math.floor(256 / math.sqrt(b)) - shift, math.floor(512 / math.sqrt(b)) - shift) == (p3, p4)


def test_analytic_branch_count_equals_built_branch():
    ens = split_resnet(reduce_resnet(mini_net(7), [1, 2, 1, 2]), 3, 7)
    widths = ens.branch_widths
    assert count_branch_params(64, widths, [1, 2], 7) == sum(p.numel() for p in ens.branches[0].parameters())


def test_reduced_net_keeps_first_blocks_with_their_weights():
    net = mini_net()
    red = reduce_resnet(net, [1, 2, 1, 1], num_classes=3)
    assert [len(getattr(red, f"layer{i}")) for i in range(1, 5)] == [1, 2, 1, 1]
    for name, t in red.state_dict().items():
        if not name.startswith("fc."):
            assert torch.equal(t, net.state_dict()[name]), name
    assert red.fc.out_features == 3
    n_convs = sum(isinstance(m, nn.Conv2d) for m in red.modules())
    assert n_convs == 1 + 3 * 5 + 4  # stem conv, 5 blocks x 3 convs, 4 projection shortcuts: nothing else
    assert red(torch.rand(2, 3, 16, 16)).shape == (2, 3)


def test_mini_branch_budget_and_reduction_ratio():
    """Spec section 8 hard assertions on the mini net: params([C]) < params([B]) / 3, 0.9 <= 4 br_D / br_C <= 1."""
    full = mini_net(5)
    c = split_resnet(reduce_resnet(full, [1, 1, 1, 1]), 1, 5)
    d = split_resnet(reduce_resnet(full, [1, 1, 1, 1]), 4, 5)
    full_counted = BottleneckResNet(num_classes=5, **MINI)
    assert count_params(c) < count_params(full_counted) / 3
    br_c = sum(p.numel() for p in c.branches[0].parameters())
    br_d = sum(p.numel() for p in d.branches[0].parameters())
    assert 0.9 * br_c <= 4 * br_d <= br_c
    assert count_macs(c, (1, 3, 16, 16)) <= count_macs(full_counted, (1, 3, 16, 16)) / 3


def expected_rows(out: int, per_branch: int, num_b: int, gen: torch.Generator) -> torch.Tensor:
    idx = list(range(out))
    while len(idx) < per_branch * num_b:
        idx += torch.randperm(out, generator=gen).tolist()
    return torch.tensor(idx[: per_branch * num_b])


@pytest.mark.parametrize("num_b", [1, 3, 4])
def test_branch_weights_are_the_specified_slices(num_b):
    net = reduce_resnet(mini_net(), [1, 1, 1, 1])
    ens = split_resnet(net, num_b, 5, seed=123)
    gen = torch.Generator().manual_seed(123)
    checked = 0
    for j, stage in enumerate((net.layer3, net.layer4)):
        src = stage[0]
        for name in ("conv1", "conv2", "conv3", "downsample.0"):
            w = src.get_submodule(name).weight
            ob, ib = ens.branches[0].stages[j][0].get_submodule(name).weight.shape[:2]
            rows = expected_rows(w.shape[0], ob, num_b, gen)
            for i, br in enumerate(ens.branches):
                want = w[rows[i * ob:(i + 1) * ob]][:, :ib]
                assert torch.equal(br.stages[j][0].get_submodule(name).weight, want), (j, name, i)
                checked += 1
    assert checked == 8 * num_b
    for br in ens.branches:  # BN and fc are fresh, even for B = 1
        for m in br.modules():
            if isinstance(m, nn.BatchNorm2d):
                assert torch.all(m.weight == 1) and torch.all(m.bias == 0) and torch.all(m.running_mean == 0)
        assert not torch.equal(br.fc.weight[:, : net.fc.in_features], net.fc.weight[:, : br.fc.in_features])


def test_per_input_channel_draw_mixes_rows_across_input_channels():
    """The authors' quirk, behind slice_mode: the random part of the row list is re-drawn for every input channel."""
    net = reduce_resnet(mini_net(), [1, 1, 1, 1])
    ens = split_resnet(net, 4, 5, seed=7, slice_mode="per_input_channel")
    w = net.layer3[0].conv1.weight  # 32 rows, O_b = 14, B = 4: list = 0..31 then random permutations
    assert ens.branch_widths[0] == 14
    assert torch.equal(ens.branches[1].stages[0][0].conv1.weight, w[14:28])  # inside 0..31: same for every column
    got = ens.branches[3].stages[0][0].conv1.weight  # rows 42..55 of each column's list: random part
    first_rows = []
    for c in range(got.shape[1]):
        matches = [r for r in range(w.shape[0]) if torch.equal(got[0, c], w[r, c])]
        assert len(matches) == 1, c  # every column holds a row of the pretrained tensor
        first_rows.append(matches[0])
    assert len(set(first_rows)) > 1  # different input channels took different rows
    plain = split_resnet(net, 4, 5, seed=7).branches[3].stages[0][0].conv1.weight
    assert len({r for c in range(plain.shape[1]) for r in range(w.shape[0]) if torch.equal(plain[0, c], w[r, c])}) == 1
    with pytest.raises(ValueError, match="slice_mode"):
        split_resnet(net, 2, 5, slice_mode="bogus")


def test_stem_is_shared_frozen_and_gets_no_gradient():
    ens = split_resnet(reduce_resnet(mini_net(), [1, 1, 1, 1]), 4, 5)
    stem_ids = {id(p) for p in ens.stem.parameters()}
    assert stem_ids and all(not p.requires_grad for p in ens.stem.parameters())
    for br in ens.branches:
        assert not stem_ids & {id(p) for p in br.parameters()}
    ens.train()
    assert not ens.stem.training and ens.branches[0].training
    before = {k: v.clone() for k, v in ens.stem.state_dict().items()}
    ens(torch.rand(4, 3, 16, 16)).logsumexp(-1).sum().backward()
    assert all(p.grad is None for p in ens.stem.parameters())
    assert all(p.grad is not None for p in ens.branches[0].parameters())
    assert all(torch.equal(before[k], v) for k, v in ens.stem.state_dict().items())  # BN stats fixed


def test_ensemble_output_is_mean_of_softmaxes():
    ens = split_resnet(reduce_resnet(mini_net(), [1, 1, 1, 1]), 4, 5).eval()
    x = torch.rand(3, 3, 16, 16)
    probs = torch.stack([lg.softmax(-1) for lg in ens.branch_logits(x)]).mean(0)
    assert torch.allclose(ens(x).softmax(-1), probs, atol=1e-6)
    assert torch.allclose(ens.predict_proba(x), probs, atol=1e-6)
    assert torch.allclose(ensemble_log_probs([torch.zeros(1, 4), torch.zeros(1, 4)]).exp(), torch.full((1, 4), 0.25))


def test_single_branch_reproduces_the_reduced_network():
    red = reduce_resnet(mini_net(), [1, 1, 1, 1]).eval()
    x = torch.rand(3, 3, 16, 16)
    ens = split_resnet(red, 1, 5, reinit_bn=False, reinit_fc=False).eval()
    assert torch.allclose(ens.branch_logits(x)[0], red(x), atol=1e-5)
    assert torch.allclose(ens(x).softmax(-1), red(x).softmax(-1), atol=1e-6)
    fresh = split_resnet(red, 1, 5).eval()  # faithful default: branch BN/fc fresh -> differs from the reduced net
    assert not torch.allclose(fresh.branch_logits(x)[0], red(x), atol=1e-3)


def test_split_rejects_impossible_configs():
    red = reduce_resnet(mini_net(), [1, 1, 1, 1])
    with pytest.raises(ValueError, match="num_branches"):
        split_resnet(red, 0, 5)
    with pytest.raises(ValueError, match="split_stage"):
        split_resnet(red, 2, 5, split_stage=5)
    with pytest.raises(ValueError, match="shift"):
        split_resnet(red, 2, 5, shift=40)
    with pytest.raises(ValueError, match="nb_blocks"):
        reduce_resnet(mini_net(), [1, 9, 1, 1])
