"""SSP-Net network: block count, cuts, head formulas (soft-argmax, depth, confidence), resolution invariance."""
import pytest
import torch

from zoo.sspnet.layers import SoftArgmaxPose
from zoo.sspnet.net import SSPNet, sspnet_tiny



def small(**kw):
    cfg = dict(num_pyramids=3, num_levels=3, growth=8, stem_channels=16, stem="tiny", input_size=32)
    cfg.update(kw)
    return SSPNet(**cfg)


def test_block_count_levels_and_output_range():
    torch.manual_seed(0)
    net = small().eval()
    assert net.num_blocks == 3 * (3 - 1)
    assert net.levels == [1, 2, 1, 0, 1, 2]  # down, up, down
    with torch.no_grad():
        poses = net(torch.rand(2, 3, 32, 32))
    assert len(poses) == 6
    for p in poses:
        assert p.shape == (2, 17, 4)
        assert p[..., :3].min() >= 0 and p[..., :3].max() <= 1  # spec 10 (d)


def test_tiny_has_eight_blocks_and_about_160k_params():
    net = sspnet_tiny()
    assert net.num_blocks == 8
    assert 120_000 < sum(p.numel() for p in net.parameters()) < 200_000  # spec: "about 160k"


def test_cut_returns_prefix_and_skips_later_blocks():
    torch.manual_seed(0)
    net = small().eval()
    x = torch.rand(1, 3, 32, 32)
    called = []
    for i, blk in enumerate(net.blocks):
        blk.register_forward_hook(lambda m, a, o, i=i: called.append(i))
    with torch.no_grad():
        full = net(x)
        called.clear()
        cut = net(x, cut=2)
    assert called == [0, 1]
    assert len(cut) == 2
    for a, b in zip(cut, full[:2]):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="cut must be"):
        net(x, cut=7)


def test_bad_input_size_and_channels_raise():
    with pytest.raises(ValueError, match="divisible"):
        small(input_size=36)
    with pytest.raises(ValueError, match="expected images"):
        small()(torch.rand(1, 1, 32, 32))


@pytest.mark.parametrize("w", [4, 8, 16, 32])
def test_soft_argmax_is_resolution_invariant(w):
    """Spec 10 (e): a one-hot heat map at pixel (x, y) gives ((x + .5)/W, (y + .5)/H)."""
    head = SoftArgmaxPose("centre")
    x, y = w - 1, w // 3
    heat = torch.full((1, 1, w, w), -1e4)
    heat[0, 0, y, x] = 1e4
    out = head(heat, torch.zeros(1, 1, w, w))
    assert out[0, 0, 0].item() == pytest.approx((x + 0.5) / w, abs=1e-6)
    assert out[0, 0, 1].item() == pytest.approx((y + 0.5) / w, abs=1e-6)
    lin = SoftArgmaxPose("linspace01")(heat, torch.zeros(1, 1, w, w))
    assert lin[0, 0, 0].item() == pytest.approx(x / (w - 1), abs=1e-6)  # the authors' grid


def test_depth_and_confidence_match_hand_computation():
    heat = torch.log(torch.tensor([[0.1, 0.2], [0.3, 0.4]])).view(1, 1, 2, 2)
    depth = torch.tensor([[0.0, 1.0], [-1.0, 2.0]]).view(1, 1, 2, 2)
    out = SoftArgmaxPose("centre")(heat, depth)[0, 0]
    sig = torch.sigmoid(torch.tensor([0.0, 1.0, -1.0, 2.0]))
    p = torch.tensor([0.1, 0.2, 0.3, 0.4])
    assert out[0].item() == pytest.approx(0.25 * (0.1 + 0.3) + 0.75 * (0.2 + 0.4), abs=1e-6)
    assert out[1].item() == pytest.approx(0.25 * 0.3 + 0.75 * 0.7, abs=1e-6)
    assert out[2].item() == pytest.approx(float((p * sig).sum()), abs=1e-6)
    assert out[3].item() == pytest.approx(1.0, abs=1e-6)  # one 2x2 window holds all the mass
    heat3 = torch.zeros(1, 1, 3, 3)  # uniform: every 2x2 window holds 4/9
    assert SoftArgmaxPose()(heat3, heat3)[0, 0, 3].item() == pytest.approx(4 / 9, abs=1e-6)


def test_paper_configuration_builds_24_blocks_from_32x32():
    net = SSPNet()  # defaults of the spec: K=8, L=4, growth 96, 256 input
    assert net.num_blocks == 24
    feat = net.stem(torch.zeros(1, 3, 256, 256))
    assert feat.shape == (1, 288, 32, 32)
    assert net.blocks[2].unit.body[2][1].out_channels == 288 + 3 * 96  # level 3 (4x4) has 576 channels


def test_every_parameter_gets_a_gradient():
    """DDP without find_unused_parameters needs it: the last block has no dead re-injection layers."""
    torch.manual_seed(0)
    net = small()
    sum(p[..., :3].sum() for p in net(torch.rand(2, 3, 32, 32))).backward()
    assert [n for n, p in net.named_parameters() if p.grad is None] == []
    assert [b.reinject for b in net.blocks] == [True] * 5 + [False]
