"""Weight sources: torchvision/timm caches (faked on disk, never downloaded), local files, clear errors."""
from __future__ import annotations

import os

import pytest
import torch

from zoo.backbone_reduction.build import build_rrrnet
from zoo.backbone_reduction.nets import BottleneckResNet
from zoo.backbone_reduction.sources import load_source_state, timm_cache_file, torchvision_cache_file

SMALL = dict(layers=[2, 2, 2, 2], planes=[4, 8, 16, 32], stem="cifar")


def source_net(seed: int = 0) -> BottleneckResNet:
    torch.manual_seed(seed)
    return BottleneckResNet(num_classes=1000, **SMALL)


def assert_reduced_from(net, src: BottleneckResNet) -> None:
    """The split model's stem and first stage-3 conv slice equal the source's tensors."""
    assert torch.equal(net.stem[1].weight, src.conv1.weight)
    assert torch.equal(net.stem[5][0].conv1.weight, src.layer1[0].conv1.weight)
    w, got = src.layer3[0].conv1.weight, net.branches[0].stages[0][0].conv1.weight
    assert torch.equal(got, w[: got.shape[0]])  # branch 0 takes the first O_b rows, all 4 * planes[1] inputs


def test_torchvision_tag_read_from_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = torchvision_cache_file("IMAGENET1K_V2")
    assert path.parent == tmp_path / "hub" / "checkpoints" and path.name.startswith("resnet152")
    with pytest.raises(FileNotFoundError, match="not cached: expected .*Nothing is downloaded"):
        load_source_state("tv:IMAGENET1K_V2")
    src = source_net()
    path.parent.mkdir(parents=True)
    torch.save(src.state_dict(), path)
    net = build_rrrnet(num_classes=7, source="tv:IMAGENET1K_V2", **SMALL)
    assert_reduced_from(net, src)
    with pytest.raises(ValueError, match="unknown torchvision tag"):
        load_source_state("tv:NOPE")


def test_timm_tag_read_from_the_hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not in the local cache.*Nothing is downloaded"):
        timm_cache_file("resnet152.a1h_in1k")
    with pytest.raises(ValueError, match="resnet152"):
        timm_cache_file("resnet50.a1_in1k")
    snap = tmp_path / "models--timm--resnet152.a1h_in1k" / "snapshots" / "0123abc"
    snap.mkdir(parents=True)
    src = source_net(1)
    torch.save(src.state_dict(), snap / "pytorch_model.bin")
    full = build_rrrnet(num_classes=5, source="timm:resnet152.a1h_in1k", nb_blocks=None, **SMALL)
    assert torch.equal(full.layer4[1].conv2.weight, src.layer4[1].conv2.weight) and full.fc.out_features == 5


@pytest.mark.parametrize("kind", ["state_dict", "zoo_weights", "lightning"])
def test_local_checkpoint_paths(tmp_path, kind):
    from zoo.hub import save_weights

    src = source_net(2)
    path = tmp_path / f"{kind}.pt"
    if kind == "state_dict":
        torch.save(src.state_dict(), path)
    elif kind == "zoo_weights":
        save_weights(src, path, arch="rrrnet_resnet152", arch_kwargs={**SMALL, "num_classes": 1000})
    else:
        torch.save({"state_dict": {f"net.{k}": v for k, v in src.state_dict().items()}, "epoch": 3}, path)
    net = build_rrrnet(num_classes=4, source=str(path), num_branches=2, **SMALL)
    assert_reduced_from(net, src)


def test_wrong_architecture_and_missing_file_are_explained(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(BottleneckResNet(layers=[1, 1, 1, 1], planes=[4, 8, 16, 32], stem="cifar").state_dict(), path)
    with pytest.raises(ValueError, match="do not fit a bottleneck ResNet.*missing"):
        build_rrrnet(num_classes=4, source=str(path), **SMALL)
    with pytest.raises(FileNotFoundError, match="no weights file"):
        build_rrrnet(num_classes=4, source=str(tmp_path / "absent.pt"), **SMALL)
    assert not os.path.exists(tmp_path / "absent.pt")
