"""Polynomial kernel convs in the deep layouts stay finite in eval mode (issue 13).

configs/kdl/cifar10.yaml + variants/conv_poly{2,3}.yaml gave NaN val/test losses after 2 training steps: BN bounds a
polynomial conv's output only with batch statistics, and eval mode's running statistics (the identity at init, 81%
init after 2 steps) let 8 stacked (x.w + c)^d convs overflow fp32. The deep layouts now divide each polynomial
conv's input (after the first) by the sample's RMS; the kernel formula itself is unchanged.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from zoo.core.optim import build_optimizer
from zoo.kdl.kernels import KernelConv2d
from zoo.kdl.module import KernelClassifier
from zoo.kdl.nets import KernelNet

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "kdl"


def _model_args(*names: str) -> dict:
    args: dict = {}
    for name in names:
        args.update(yaml.safe_load((CONFIGS / name).read_text())["model"]["init_args"])
    return args


@pytest.mark.timeout(120)
@pytest.mark.parametrize("dataset,variant,shape", [
    ("cifar10", "conv_poly2", (3, 32, 32)),
    ("cifar10", "conv_poly3", (3, 32, 32)),
    ("fer2013", "conv_poly3", (1, 44, 44)),  # 13 polynomial convs, SGD 0.01
])
def test_config_poly_convs_two_steps_then_eval_are_finite(dataset: str, variant: str, shape: tuple) -> None:
    """The config's network and optimiser (lr, momentum, nesterov, wd), batch 2, two steps: finite gradients in
    training; finite logits and loss in eval mode, at init and after the steps, on unseen inputs."""
    torch.manual_seed(0)
    args = _model_args(f"{dataset}.yaml", f"variants/{variant}.yaml")
    model = KernelClassifier(**args)
    net, cfg = model.net, model.optim_cfg
    assert {m.kfn.kind for m in net.modules() if isinstance(m, KernelConv2d)} == {"poly"}
    opt = build_optimizer(net.parameters(), cfg["optimizer"], lr=cfg["lr"], momentum=cfg["momentum"],
                          weight_decay=cfg["weight_decay"], nesterov=cfg["nesterov"])
    x, y = torch.rand(2, *shape), torch.tensor([1, 2])
    held_out = torch.rand(2, *shape)

    def eval_loss() -> torch.Tensor:
        net.eval()
        with torch.no_grad():
            logits = net(held_out)
        assert torch.isfinite(logits).all(), logits
        return F.cross_entropy(logits, y)

    assert torch.isfinite(eval_loss())  # Lightning's sanity check: eval before any step
    for _ in range(2):
        net.train()
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        assert torch.isfinite(loss)
        assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
        opt.step()
    assert torch.isfinite(eval_loss())


def test_rms_input_norm_is_the_kernel_on_the_rms_normalised_input() -> None:
    torch.manual_seed(0)
    plain = KernelConv2d(6, 4, 3, padding=1, kernel="poly", degree=3)
    normed = KernelConv2d(6, 4, 3, padding=1, kernel="poly", degree=3, input_norm="rms")
    normed.load_state_dict(plain.state_dict())
    x = torch.randn(3, 6, 5, 5) * torch.tensor([0.1, 1.0, 30.0]).view(3, 1, 1, 1)
    rms = (x.pow(2).mean(dim=(1, 2, 3), keepdim=True) + 1e-6).sqrt()  # per sample, over (C, H, W)
    assert torch.allclose(normed(x), plain(x / rms), rtol=1e-4, atol=1e-5)
    assert torch.allclose(normed(1e3 * x), normed(10 * x), rtol=1e-4, atol=1e-5)  # the input's scale is gone
    assert "input_norm=rms" in repr(normed) and "input_norm" not in repr(plain)
    with pytest.raises(ValueError, match="unknown input_norm"):
        KernelConv2d(6, 4, 3, input_norm="ln")


@pytest.mark.parametrize("arch,kernel,conv_input_norm,expected", [
    ("cifar_vgg11", "poly", None, "rms"),  # the deep layouts' default for polynomial convs
    ("fer_vgg16", "poly", None, "rms"),
    ("fer2013_vgg16", "poly", None, "rms"),
    ("cifar_vgg11", "linear", None, "none"),  # the linear baseline is the spec's VGG-11-BN
    ("cifar_vgg11", "gauss", None, "none"),  # bounded kernels need nothing
    ("mnist_cnn", "poly", None, "none"),  # 4 convs: finite without it (and digits: the shipped weights)
    ("digits_cnn", "poly", None, "none"),
    ("cifar_vgg11", "poly", "none", "none"),  # the spec's plain stack, on request
    ("mnist_cnn", "gauss", "rms", "rms"),
])
def test_conv_input_norm_default_per_layout(arch: str, kernel: str, conv_input_norm: str | None,
                                            expected: str) -> None:
    net = KernelNet(arch, conv_kernel=kernel, conv_input_norm=conv_input_norm).to("meta")
    convs = [m for m in net.modules() if isinstance(m, KernelConv2d)]
    assert convs[0].input_norm == "none"  # it sees the normalised image, bounded
    assert {c.input_norm for c in convs[1:]} == {expected}


def test_conv_input_norm_rejects_unknown_values() -> None:
    with pytest.raises(ValueError, match="unknown conv_input_norm"):
        KernelNet("digits_cnn", conv_input_norm="bn")
