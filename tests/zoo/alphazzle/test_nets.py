"""Alphazzle's networks: the WRN-28-4 trunk of the paper, heads, trunk sharing, and the small CPU encoder."""
import torch

from zoo.alphazzle.nets import AlphazzleNet, WideResNetTrunk


def test_wrn28_4_size_and_feature_maps():
    trunk = WideResNetTrunk(28, 4)
    n = sum(p.numel() for p in trunk.parameters())
    assert 5.8e6 < n < 5.9e6  # spec: about 5.85 M parameters
    assert trunk.num_features(128) == 16384 and trunk.num_features(40) == 1024
    trunk.eval()
    with torch.no_grad():
        assert trunk(torch.zeros(1, 3, 40, 40)).shape == (1, 1024)


def test_paper_net_shapes_and_separate_trunks():
    torch.manual_seed(0)
    net = AlphazzleNet().eval()
    assert net.policy.trunk is not net.value.trunk
    assert len(net.policy.canvas_branch) == 12 and net.policy.canvas_branch[0].in_features == 16384
    with torch.no_grad():
        logits, v = net(torch.zeros(2, 3, 128, 128), torch.zeros(2, 3, 40, 40))
    assert logits.shape == (2, 9) and v.shape == (2,)


def test_shared_trunk_flag():
    net = AlphazzleNet(3, 6, 2, encoder="small", share_trunk=True)
    assert net.policy.trunk is net.value.trunk
    sep = AlphazzleNet(3, 6, 2, encoder="small")
    n_shared = sum(p.numel() for p in net.parameters())
    n_sep = sum(p.numel() for p in sep.parameters())
    assert n_sep - n_shared == sum(p.numel() for p in sep.value.trunk.parameters())


def test_small_encoder_on_digit_puzzles():
    net = AlphazzleNet(3, 6, 2, encoder="small")
    logits, v = net(torch.randn(4, 3, 22, 22), torch.randn(4, 3, 6, 6))
    assert logits.shape == (4, 9) and v.shape == (4,)
    (logits.sum() + v.sum()).backward()
    assert net.policy.trunk.body[0].weight.grad is not None
