"""SimSiam / MoCo v2 / SimCLR networks: heads, parameter groups, the MoCo key encoder and queue, backbones, views."""
import pytest
import torch
from torch import nn

from zoo.nasiam import SearchChain, SiameseNet
from zoo.nasiam.augment import DigitsAugment, build_augment

SMALL = dict(backbone="digits_convnet", in_chans=1, mean=[0.5], std=[0.5], width=8, dim=16, pred_dim=8, hidden_dim=8,
             proj_layers=3, pred_layers=2, queue_size=24)


@pytest.mark.parametrize("framework", ["simsiam", "moco", "simclr"])
def test_search_heads_separate_alpha_from_weights_and_receive_gradients(framework):
    torch.manual_seed(0)
    net = SiameseNet(framework, head="search", **SMALL)
    chains = net.search_chains()
    assert set(chains) == ({"projector", "predictor"} if framework == "simsiam" else {"projector"})
    arch, weights = net.arch_parameters(), net.weight_parameters()
    assert {id(p) for p in arch}.isdisjoint({id(p) for p in weights}) and len(arch) == len(chains)
    x1, x2 = torch.rand(8, 1, 8, 8), torch.rand(8, 1, 8, 8)
    loss, z = net.ssl_loss(x1, x2)
    loss.backward()
    assert z.shape == (8, 16) and all(p.grad is not None and p.grad.abs().sum() > 0 for p in arch)
    assert net(x1).shape == (8, 16) and net.embed(x1).shape == (8, 16)
    geno = net.genotype()
    assert len(geno.projector.ops) == 3


def test_simsiam_projector_tail_and_predictor_dims():
    net = SiameseNet("simsiam", head="standard", **SMALL)
    fc, bn = net.projector.tail
    assert fc.bias.requires_grad is False and fc.weight.requires_grad
    assert bn.affine is False and bn.num_features == 16
    assert net.dims == {"projector": [16, 16, 16, 16], "predictor": [16, 8, 16]}
    assert all(p.requires_grad for p in net.predictor.parameters())


def test_moco_key_encoder_is_a_separate_momentum_copy_and_the_queue_wraps():
    torch.manual_seed(0)
    net = SiameseNet("moco", head="search", momentum=0.9, **SMALL)
    q_ids = {id(p) for p in net.parameters() if p.requires_grad}
    k_params = [*net.key_backbone.parameters(), *net.key_projector.parameters()]
    assert k_params and all(not p.requires_grad and id(p) not in q_ids for p in k_params)  # defect 4: not shared
    assert net.key_projector.chain.alpha is None  # keys use the query's mixing weights
    q_fc, k_fc = net.projector.tail, net.key_projector.tail
    with torch.no_grad():
        q_fc.weight.add_(1.0)
    before = k_fc.weight.clone()
    net.momentum_update()
    torch.testing.assert_close(k_fc.weight, 0.9 * before + 0.1 * q_fc.weight)
    keys = torch.nn.functional.normalize(torch.randn(20, 16), dim=1)
    net.enqueue(keys)
    net.enqueue(keys[:10])
    assert int(net.queue_ptr) == (20 + 10) % 24
    torch.testing.assert_close(net.queue[:, :6], keys[4:10].t())  # wrapped around
    torch.testing.assert_close(net.queue[:, 6:20], keys[6:20].t())
    loss, _ = net.ssl_loss(torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8))
    assert int(net.queue_ptr) == (30 + 8) % 24 and torch.isfinite(loss)


def test_published_head_and_cifar_resnet_backbone():
    torch.manual_seed(0)
    net = SiameseNet("simsiam", backbone="resnet18", head="simsiam_cifar10_resnet18", dim=64, pred_dim=16)
    trunk = net.backbone.trunk
    assert trunk.conv1.kernel_size == (3, 3) and trunk.conv1.stride == (1, 1) and isinstance(trunk.maxpool, nn.Identity)
    assert net.num_features == 512 and net.dims["projector"] == [512] * 7 and net.dims["predictor"] == [64, 16, 16, 16, 64]
    assert not isinstance(net.projector.chain, SearchChain)
    net.eval()
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 512)
    assert SiameseNet("simclr", backbone="resnet50", head="simclr_cifar10_resnet50", dim=128).dims["projector"] == \
        [2048, 512, 512, 512, 512, 512, 128]
    with pytest.raises(ValueError, match="unknown framework"):
        SiameseNet("byol")


def test_two_view_augmentations_run_on_tensors_and_differ():
    torch.manual_seed(0)
    x = torch.rand(64, 1, 8, 8)
    aug = DigitsAugment()
    v1, v2 = aug(x), aug(x)
    assert v1.shape == x.shape and (v1 - v2).abs().mean() > 0.05
    aug.noise_std, aug.erase_p, aug.scale = 0.0, 1.0, (1.0, 1.0)
    erased = (aug(torch.ones(16, 1, 8, 8)) == 0).flatten(1).sum(1)
    assert (erased >= 9).all()  # a 3x3 box (plus the zero padding shifted in by the translation)
    cifar = build_augment("cifar", "simsiam")(torch.rand(4, 3, 32, 32))
    assert cifar.shape == (4, 3, 32, 32)
    with pytest.raises(ValueError, match="unknown augmentation"):
        build_augment("mnist")
