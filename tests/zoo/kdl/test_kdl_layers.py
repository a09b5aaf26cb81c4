"""Kernel layers: linear kernel == torch layers; every kernel formula against an explicit unfold computation."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.kdl.kernels import KERNELS, KernelConv2d, KernelFunction, KernelLinear, KernelPool2d, kernel_parameters


def reference(x_rows: torch.Tensor, w: torch.Tensor, kind: str, c=1.0, gamma=0.5, degree=2, sigma=2.0):
    """k(x_i, w_j) for rows x_i and weight rows w_j, computed directly from the definitions (float64)."""
    x_rows, w = x_rows.double(), w.double()
    dot = x_rows @ w.T
    dist = ((x_rows[:, None, :] - w[None, :, :]) ** 2).sum(-1)
    return {"linear": dot, "poly": (dot + c) ** degree, "sigmoid": torch.tanh(dot + c),
            "gauss": torch.exp(-gamma * dist), "cauchy": 1 / (1 + dist / sigma ** 2)}[kind]


def test_linear_kernel_is_exactly_torch_layers() -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 12)
    ref = nn.Linear(12, 7)
    kdl = KernelLinear(12, 7, kernel="linear")
    kdl.load_state_dict(ref.state_dict())
    assert torch.equal(kdl(x), ref(x))
    # same init as nn.Linear under the same seed (drop-in replacement)
    torch.manual_seed(3)
    a = nn.Linear(12, 7)
    torch.manual_seed(3)
    b = KernelLinear(12, 7, kernel="poly")
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)

    img = torch.randn(2, 6, 9, 11)
    conv = nn.Conv2d(6, 8, 3, stride=2, padding=1, groups=2)
    kconv = KernelConv2d(6, 8, 3, stride=2, padding=1, groups=2, kernel="linear")
    kconv.load_state_dict(conv.state_dict())
    assert torch.equal(kconv(img), conv(img))

    pool = KernelPool2d(6, 2, kernel="linear")
    assert torch.allclose(pool(img), nn.AvgPool2d(2)(img), atol=1e-6, rtol=0)
    pool3 = KernelPool2d(6, 3, kernel="linear")
    assert torch.allclose(pool3(img), nn.AvgPool2d(3)(img), atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", KERNELS)
def test_dense_kernel_formulas(kind: str) -> None:
    torch.manual_seed(1)
    layer = KernelLinear(10, 4, kernel=kind, degree=3, c_init=0.7, gamma_init=0.3, sigma_init=1.5)
    x = torch.randn(6, 10) * 0.5
    expected = reference(x, layer.weight.detach(), kind, c=0.7, gamma=0.3, degree=3, sigma=1.5) + layer.bias.double()
    assert torch.allclose(layer(x).double(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", KERNELS)
@pytest.mark.parametrize("groups,stride,padding", [(1, 1, 1), (2, 2, 0)])
def test_conv_kernel_formulas_match_unfold(kind: str, groups: int, stride: int, padding: int) -> None:
    torch.manual_seed(2)
    cin, cout, k = 4, 6, 3
    layer = KernelConv2d(cin, cout, k, stride=stride, padding=padding, groups=groups, kernel=kind,
                         c_init=0.5, gamma_init=0.2, sigma_init=1.3, degree=2)
    x = torch.randn(2, cin, 7, 8) * 0.7
    out = layer(x)
    oh, ow = out.shape[-2:]
    patches = F.unfold(x, k, padding=padding, stride=stride)  # (N, cin*k*k, L)
    per_group_in, per_group_out = cin // groups, cout // groups
    for g in range(groups):
        p = patches.view(2, cin, k * k, -1)[:, g * per_group_in:(g + 1) * per_group_in].reshape(2, -1, oh * ow)
        rows = p.permute(0, 2, 1).reshape(-1, per_group_in * k * k)
        w = layer.weight.detach()[g * per_group_out:(g + 1) * per_group_out].flatten(1)
        ref = reference(rows, w, kind, c=0.5, gamma=0.2, sigma=1.3)
        ref = ref + layer.bias.detach()[g * per_group_out:(g + 1) * per_group_out].double()
        got = out[:, g * per_group_out:(g + 1) * per_group_out].permute(0, 2, 3, 1).reshape(-1, per_group_out)
        assert torch.allclose(got.double(), ref, atol=1e-5, rtol=1e-5)


def test_default_conv_gamma_is_one_over_fan_in() -> None:
    layer = KernelConv2d(8, 4, 3, kernel="gauss")
    assert math.isclose(float(layer.kfn.log_gamma.detach().exp()), 1 / 72, rel_tol=1e-6)


@pytest.mark.parametrize("kind", ["poly", "gauss", "sigmoid", "cauchy"])
def test_pool_is_a_depthwise_kernel_against_a_template(kind: str) -> None:
    torch.manual_seed(4)
    pool = KernelPool2d(3, 2, kernel=kind, c_init=0.1, gamma_init=0.7)
    with torch.no_grad():
        pool.template.add_(torch.randn_like(pool.template) * 0.1)
    x = torch.randn(2, 3, 6, 6)
    out = pool(x)
    assert out.shape == (2, 3, 3, 3)
    for ch in range(3):
        windows = F.unfold(x[:, ch:ch + 1], 2, stride=2).permute(0, 2, 1).reshape(-1, 4)
        ref = reference(windows, pool.template.detach()[ch].view(1, 4), kind, c=0.1, gamma=0.7)
        assert torch.allclose(out[:, ch].reshape(-1, 1).double(), ref, atol=1e-5, rtol=1e-5)


def test_bias_inside_is_kervolution_form() -> None:
    torch.manual_seed(5)
    layer = KernelLinear(5, 3, kernel="poly", c_init=1.0, bias_inside=True)
    x = torch.randn(4, 5)
    expected = (x @ layer.weight.T + layer.bias + 1.0) ** 2
    assert torch.allclose(layer(x), expected, atol=1e-5)
    with pytest.raises(ValueError, match="dot-product"):
        KernelLinear(5, 3, kernel="gauss", bias_inside=True)


def test_learnable_fixed_and_per_unit_parameters() -> None:
    layer = KernelLinear(6, 4, kernel="gauss", learnable=True, per_unit=True, gamma_init=0.25)
    assert isinstance(layer.kfn.log_gamma, nn.Parameter) and layer.kfn.log_gamma.shape == (4,)
    layer(torch.randn(3, 6)).sum().backward()
    assert layer.kfn.log_gamma.grad is not None and layer.kfn.log_gamma.grad.abs().sum() > 0
    fixed = KernelConv2d(3, 5, 3, kernel="poly", learnable=False)
    assert "kfn.c" in dict(fixed.named_buffers()) and "kfn.c" not in dict(fixed.named_parameters())
    assert "kfn.c" in fixed.state_dict()
    model = nn.Sequential(layer, nn.ReLU(), KernelLinear(4, 2, kernel="poly", c_init=0.3))
    params = kernel_parameters(model)
    assert math.isclose(params["0.gamma"], 0.25, rel_tol=1e-5) and math.isclose(params["2.c"], 0.3, rel_tol=1e-6)


def test_kernel_op_stays_fp32_under_autocast() -> None:
    torch.manual_seed(6)
    layer = KernelLinear(64, 8, kernel="poly", degree=3)
    conv = KernelConv2d(3, 4, 3, padding=1, kernel="gauss", gamma_init=0.05)
    x = torch.randn(4, 64) * 4
    img = torch.randn(2, 3, 8, 8)
    ref, ref_conv = layer(x), conv(img)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, out_conv = layer(x), conv(img)
        out_half_in = layer(x.bfloat16())
        lin = KernelLinear(64, 8, kernel="linear")(x)
    assert out.dtype == torch.float32 and out_conv.dtype == torch.float32
    # not one bf16 rounding inside: results equal the fp32 computation
    assert torch.allclose(out, ref, rtol=1e-6, atol=1e-5) and torch.allclose(out_conv, ref_conv, atol=1e-6)
    assert out_half_in.dtype == torch.float32 and torch.allclose(out_half_in, layer(x.bfloat16().float()), atol=1e-5)
    assert lin.dtype == torch.bfloat16  # the linear kernel is nn.Linear, autocast as usual


def test_bad_kernel_arguments() -> None:
    with pytest.raises(ValueError, match="unknown kernel 'rbf'"):
        KernelFunction("rbf")
    with pytest.raises(ValueError, match="degree"):
        KernelLinear(3, 2, kernel="poly", degree=0)
    with pytest.raises(ValueError, match="gamma_init"):
        KernelLinear(3, 2, kernel="gauss", gamma_init=-1.0)


def _unfold_kernel_conv(layer: KernelConv2d, x: torch.Tensor) -> torch.Tensor:
    """The layer's output from its definition, in float64: unfold patches (after the layer's own padding mode),
    evaluate k(patch, w_o) per output unit with the layer's (possibly per-unit) parameters, add the bias."""
    x = x.double()
    pad = 0 if layer.padding_mode == "zeros" else layer.padding
    if layer.padding_mode != "zeros":
        x = F.pad(x, layer._reversed_padding_repeated_twice, mode=layer.padding_mode)
    out_h = (x.shape[2] + 2 * (layer.padding[0] if pad == 0 and layer.padding_mode == "zeros" else 0)
             - layer.dilation[0] * (layer.kernel_size[0] - 1) - 1) // layer.stride[0] + 1
    patches = F.unfold(x, layer.kernel_size, dilation=layer.dilation,
                       padding=layer.padding if layer.padding_mode == "zeros" else 0, stride=layer.stride)
    rows = patches.permute(0, 2, 1)  # (N, L, C k k)
    w = layer.weight.double().flatten(1)  # (O, C k k)
    kfn = layer.kfn
    dot = rows @ w.T
    dist = (rows.pow(2).sum(-1, keepdim=True) + w.pow(2).sum(-1) - 2 * dot)
    if kfn.kind == "poly":
        y = (dot + kfn.c.double()) ** kfn.degree
    elif kfn.kind == "gauss":
        y = torch.exp(-kfn.log_gamma.double().exp() * dist)
    else:
        y = 1 / (1 + dist / kfn.log_sigma.double().exp() ** 2)
    if layer.bias is not None:
        y = y + layer.bias.double()
    return y.permute(0, 2, 1).reshape(x.shape[0], -1, out_h, patches.shape[-1] // out_h)


@pytest.mark.parametrize("kind", ["poly", "gauss", "cauchy"])
@pytest.mark.parametrize("options", [dict(dilation=2, padding=2), dict(padding=1, padding_mode="reflect"),
                                     dict(padding=1, per_unit=True, degree=3), dict(padding=2, stride=2)])
def test_folded_conv_kernels_match_definition_values_and_gradients(kind: str, options: dict) -> None:
    """The folded computation (scalars inside the conv, ||patch||^2 by channel sum + box filter) equals the
    unfold definition, forward and backward, with dilation, reflect padding and per-unit parameters."""
    torch.manual_seed(7)
    layer = KernelConv2d(5, 6, 3, kernel=kind, c_init=0.4, gamma_init=0.15, sigma_init=1.7, **options)
    if layer.kfn.per_unit:
        with torch.no_grad():
            for p in layer.kfn.parameters():
                p.add_(torch.linspace(-0.2, 0.2, p.numel()))
    ref_layer = KernelConv2d(5, 6, 3, kernel=kind, c_init=0.4, gamma_init=0.15, sigma_init=1.7, **options).double()
    ref_layer.load_state_dict(layer.state_dict())
    x = (torch.randn(2, 5, 9, 10) * 0.6).requires_grad_(True)
    xd = x.detach().double().requires_grad_(True)
    out, ref = layer(x), _unfold_kernel_conv(ref_layer, xd)
    assert out.shape == ref.shape
    assert torch.allclose(out.double(), ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(ref)
    out.backward(g.float())
    ref.backward(g)
    assert torch.allclose(x.grad.double(), xd.grad, atol=1e-4, rtol=1e-4)
    for (name, p), p_ref in zip(layer.named_parameters(), ref_layer.parameters()):
        assert torch.allclose(p.grad.double(), p_ref.grad, atol=1e-4, rtol=1e-4), name
