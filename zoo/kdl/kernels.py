"""Kernel functions inside CNN layers (Mahmoudi et al., KDL ICIP 2020 and arXiv 2302.10266).

Drop-in layers: :class:`KernelLinear` (Kernelized Dense Layer, same weight as ``nn.Linear``),
:class:`KernelConv2d` (kervolution, same weight as ``nn.Conv2d``) and :class:`KernelPool2d`
(kernel "distortion-aware" pooling, reconstructed). Each computes one matmul/convolution plus
norms, ``||x - w||^2 = ||x||^2 + ||w||^2 - 2 x.w``, with the non-linear kernel op in fp32.
"""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

KERNELS = ("linear", "poly", "gauss", "sigmoid", "cauchy")
DISTANCE_KERNELS = ("gauss", "cauchy")


def kernel_fn(lin: torch.Tensor, kind: str, *, x_sq: torch.Tensor | None = None, w_sq: torch.Tensor | None = None,
              c: torch.Tensor | float = 0.0, gamma: torch.Tensor | float = 1.0, degree: int = 2,
              sigma: torch.Tensor | float = 2.0) -> torch.Tensor:
    """k(x, w) from the dot product ``lin`` = x.w (and the squared norms for distance kernels).

    linear: x.w; poly: (x.w + c)^d; sigmoid: tanh(x.w + c); gauss: exp(-gamma ||x-w||^2);
    cauchy: 1 / (1 + ||x-w||^2 / sigma^2).
    """
    if kind == "linear":
        return lin
    if kind == "poly":
        return (lin + c).pow(degree)
    if kind == "sigmoid":
        return torch.tanh(lin + c)
    if kind in DISTANCE_KERNELS:
        if x_sq is None or w_sq is None:
            raise ValueError(f"the {kind} kernel needs ||x||^2 and ||w||^2")
        dist = (x_sq + w_sq - 2.0 * lin).clamp_min(0.0)
        if kind == "gauss":
            return torch.exp(-gamma * dist)
        return 1.0 / (1.0 + dist / (sigma * sigma))
    raise ValueError(f"unknown kernel {kind!r}; expected one of {KERNELS}")


class KernelFunction(nn.Module):
    """The scalar parameters of one layer's kernel (c, gamma, sigma), fixed or learnable, shared or per unit.

    gamma and sigma are stored as logarithms so they stay positive while learnt; ``degree`` is fixed.
    """

    def __init__(self, kind: str = "poly", num_units: int = 1, degree: int = 2, c_init: float = 1.0,
                 gamma_init: float = 0.5, sigma_init: float = 2.0, learnable: bool = True,
                 per_unit: bool = False) -> None:
        super().__init__()
        if kind not in KERNELS:
            raise ValueError(f"unknown kernel {kind!r}; expected one of {KERNELS}")
        if kind == "poly" and (int(degree) != degree or degree < 1):
            raise ValueError(f"polynomial degree must be a positive integer, got {degree}")
        if gamma_init <= 0 or sigma_init <= 0:
            raise ValueError(f"gamma_init and sigma_init must be > 0, got {gamma_init}, {sigma_init}")
        self.kind, self.degree, self.learnable, self.per_unit = kind, int(degree), learnable, per_unit
        shape = (num_units,) if per_unit else ()
        names = {"poly": {"c": c_init}, "sigmoid": {"c": c_init}, "gauss": {"log_gamma": math.log(gamma_init)},
                 "cauchy": {"log_sigma": math.log(sigma_init)}}.get(kind, {})
        for name, value in names.items():
            tensor = torch.full(shape, float(value))
            if learnable:
                self.register_parameter(name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)

    @property
    def needs_norms(self) -> bool:
        return self.kind in DISTANCE_KERNELS

    def _param(self, name: str, ndim: int, unit_dim: int) -> torch.Tensor:
        p = getattr(self, name).float()
        if self.per_unit:  # broadcast (units,) along ``unit_dim`` of an ``ndim`` tensor
            p = p.view([-1 if d == unit_dim else 1 for d in range(ndim)])
        return p

    def forward(self, lin: torch.Tensor, x_sq: torch.Tensor | None = None, w_sq: torch.Tensor | None = None,
                unit_dim: int = -1) -> torch.Tensor:
        unit_dim = unit_dim % lin.ndim
        kw: dict = {"degree": self.degree}
        if self.kind in ("poly", "sigmoid"):
            kw["c"] = self._param("c", lin.ndim, unit_dim)
        elif self.kind == "gauss":
            kw["gamma"] = self._param("log_gamma", lin.ndim, unit_dim).exp()
        elif self.kind == "cauchy":
            kw["sigma"] = self._param("log_sigma", lin.ndim, unit_dim).exp()
        return kernel_fn(lin, self.kind, x_sq=x_sq, w_sq=w_sq, **kw)

    def values(self) -> dict[str, torch.Tensor]:
        """Current kernel parameters in their natural units (c, gamma, sigma), for logging."""
        out = {}
        for name in ("c", "log_gamma", "log_sigma"):
            if hasattr(self, name):
                v = getattr(self, name).detach()
                out[name.removeprefix("log_")] = v.exp() if name.startswith("log_") else v
        return out

    def extra_repr(self) -> str:
        extra = f", degree={self.degree}" if self.kind == "poly" else ""
        return f"kind={self.kind}{extra}, learnable={self.learnable}, per_unit={self.per_unit}"


def _fp32_off_autocast(device_type: str):
    """Disable autocast so the kernel op runs in fp32 (a no-op context on devices without autocast, e.g. meta)."""
    if not torch.amp.is_autocast_available(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)


class KernelLinear(nn.Linear):
    """Kernelized Dense Layer (KDL, Mahmoudi et al. ICIP 2020): y_j = k(x, w_j) + b_j.

    Same weight/bias shapes and init as ``nn.Linear``; with ``kernel="linear"`` it is ``nn.Linear``.
    ``bias_inside=True`` gives k(x, w_j) evaluated at x.w_j + b_j (Kervolution's form; dot-product kernels only).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, kernel: str = "poly",
                 degree: int = 2, c_init: float = 1.0, gamma_init: float | None = 0.5, sigma_init: float = 2.0,
                 learnable: bool = True, per_unit: bool = False, bias_inside: bool = False,
                 device=None, dtype=None) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        if bias_inside and kernel in DISTANCE_KERNELS:
            raise ValueError(f"bias_inside applies to dot-product kernels, not {kernel!r}")
        self.bias_inside = bias_inside
        gamma = 1.0 / in_features if gamma_init is None else gamma_init  # None: gamma = 1/dim
        self.kfn = KernelFunction(kernel, out_features, degree, c_init, gamma, sigma_init, learnable, per_unit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kfn.kind == "linear":
            return F.linear(x, self.weight, self.bias)
        with _fp32_off_autocast(x.device.type):
            x32, w32 = x.float(), self.weight.float()
            b32 = None if self.bias is None else self.bias.float()
            lin = F.linear(x32, w32, b32 if self.bias_inside else None)
            x_sq = w_sq = None
            if self.kfn.needs_norms:
                x_sq, w_sq = x32.pow(2).sum(-1, keepdim=True), w32.pow(2).sum(-1)
            y = self.kfn(lin, x_sq, w_sq, unit_dim=-1)
            return y + b32 if (b32 is not None and not self.bias_inside) else y


class KernelConv2d(nn.Conv2d):
    """Kernel convolution (kervolution, used per layer type in Mahmoudi et al. 2023): y[o] = k(patch, W_o) + b_o.

    Same weight/bias as ``nn.Conv2d``; ``kernel="linear"`` is exactly ``nn.Conv2d``. No feature map is
    unfolded: the kernel's scalars are folded into one convolution (see :meth:`forward`) and ||patch||^2 is
    a channel sum of x^2 followed by a one-channel box filter.

    ``input_norm="rms"`` (off by default; not in the papers or Kervolution) divides each sample's input by its
    root mean square over (C, H, W) before the kernel, x / sqrt(mean(x^2) + eps): scale only, no mean
    subtraction, no parameters, no running statistics. The kernel formula is unchanged; it sees a unit-scale x.
    ``KernelNet`` turns it on in front of the polynomial convs of its deep layouts, where without it the eval-mode
    network overflows (see ``zoo.kdl.nets`` and docs/kdl.md).
    """

    INPUT_NORMS = ("none", "rms")

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", kernel: str = "poly",
                 degree: int = 2, c_init: float = 1.0, gamma_init: float | None = None, sigma_init: float = 2.0,
                 learnable: bool = True, per_unit: bool = False, bias_inside: bool = False,
                 input_norm: str = "none", device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device=device, dtype=dtype)
        if bias_inside and kernel in DISTANCE_KERNELS:
            raise ValueError(f"bias_inside applies to dot-product kernels, not {kernel!r}")
        if input_norm not in self.INPUT_NORMS:
            raise ValueError(f"unknown input_norm {input_norm!r}; expected one of {self.INPUT_NORMS}")
        self.bias_inside, self.input_norm = bias_inside, input_norm
        fan_in = (in_channels // groups) * self.kernel_size[0] * self.kernel_size[1]
        gamma = 1.0 / fan_in if gamma_init is None else gamma_init  # gamma = 1/(C k^2), spec section 8
        self.kfn = KernelFunction(kernel, out_channels, degree, c_init, gamma, sigma_init, learnable, per_unit)
        self.register_buffer("box_filter", torch.ones(groups, 1, *self.kernel_size), persistent=False)

    def normalise_input(self, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        """``input_norm="rms"``: x / sqrt(mean over (C, H, W) of x^2 + eps), per sample (reduced in fp32)."""
        if self.input_norm == "none":
            return x
        ms = x.float().pow(2).mean(dim=(1, 2, 3), keepdim=True)
        return x * torch.rsqrt(ms + eps).to(x.dtype)

    def _unit(self, name: str) -> torch.Tensor:
        """A kernel scalar as an (out_channels,) vector (shared ones expanded), for folding into conv weights."""
        return self.kfn._param(name, 1, 0).expand(self.out_channels)

    def patch_sq_norm(self, x32: torch.Tensor) -> torch.Tensor:
        """||patch||^2 at every output position, (N, groups, H', W'): channel sum of x^2, then a box filter."""
        n, _, h, w = x32.shape
        sq = x32 * x32
        sq = sq.sum(1, keepdim=True) if self.groups == 1 else sq.view(n, self.groups, -1, h, w).sum(2)
        padding = self.padding
        if self.padding_mode != "zeros":  # pad the channel sum as _conv_forward pads x (same values, squared)
            sq, padding = F.pad(sq, self._reversed_padding_repeated_twice, mode=self.padding_mode), (0, 0)
        kh, kw = self.kernel_size
        if (self.dilation == (1, 1) and not isinstance(padding, str)
                and 2 * padding[0] <= kh and 2 * padding[1] <= kw):  # avg_pool's limits; faster than a 1-channel conv
            return F.avg_pool2d(sq, self.kernel_size, self.stride, padding, count_include_pad=True) * (kh * kw)
        return F.conv2d(sq, self.box_filter.float(), None, self.stride, padding, self.dilation, self.groups)

    def _per_channel(self, s: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """``scale[o] * s[group of o]`` broadcastable against (N, out_channels, H', W'), without a full copy
        when both the scale and the group are shared."""
        if self.groups == 1 and not self.kfn.per_unit:
            return s * scale[0]
        s = s.repeat_interleave(self.out_channels // self.groups, dim=1) if self.groups > 1 else s
        return s * scale.view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kind = self.kfn.kind
        if kind == "linear":
            return self._conv_forward(self.normalise_input(x), self.weight, self.bias)
        with _fp32_off_autocast(x.device.type):
            x32, w32 = self.normalise_input(x.float()), self.weight.float()
            b32 = None if self.bias is None else self.bias.float()
            inner = b32 if self.bias_inside else None
            if kind in ("poly", "sigmoid"):  # k(x.w + c): c folded into the convolution's bias
                c = self._unit("c")
                z = self._conv_forward(x32, w32, c if inner is None else c + inner)
                saved = torch.is_grad_enabled() and z.requires_grad  # the op's backward needs z: no in-place
                if kind == "sigmoid":
                    y = torch.tanh(z) if saved else z.tanh_()
                elif self.kfn.degree == 2:
                    y = z * z if saved else z.mul_(z)
                else:
                    y = z.pow(self.kfn.degree) if saved else z.pow_(self.kfn.degree)
            else:  # distance kernels: -||x - w||^2 * a = a (2 x.w - ||w||^2) - a ||x||^2, one conv + one subtraction
                w_sq = w32.pow(2).flatten(1).sum(1)
                a = self._unit("log_gamma").exp() if kind == "gauss" else self._unit("log_sigma").exp().pow(-2)
                z = self._conv_forward(x32, w32 * (2 * a).view(-1, 1, 1, 1), -a * w_sq)
                # in place: the conv's backward does not need its output, nor a subtraction's its operands
                z = z.sub_(self._per_channel(self.patch_sq_norm(x32), a))  # = -a ||x - w||^2 up to rounding
                # Gaussian: no clamp at distance 0 (its backward costed as much as the rest of the kernel op); a
                # rounding-negative distance gives exp(+1e-6) = 1 + 1e-6. Cauchy keeps it: 1 / (1 - z) has a pole.
                y = z.exp_() if kind == "gauss" else 1.0 / (1.0 - z.clamp_max(0.0))
            if b32 is not None and not self.bias_inside:
                y = y + b32.view(1, -1, 1, 1)
            return y

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", input_norm={self.input_norm}" if self.input_norm != "none" else "")


class KernelPool2d(nn.Module):
    """Kernel ("distortion-aware") pooling of Mahmoudi et al. 2023, reconstructed: y[c,i,j] = k(window_ij, t_c).

    A learnable k x k template t_c per channel, initialised to 1/k^2, compared with every window by a
    depthwise convolution: with the linear kernel it is exactly average pooling at init.
    """

    def __init__(self, channels: int, kernel_size: int = 2, stride: int | None = None, padding: int = 0,
                 kernel: str = "poly", degree: int = 2, c_init: float = 0.0, gamma_init: float | None = 0.5,
                 sigma_init: float = 2.0, learnable: bool = True, per_unit: bool = False,
                 learn_template: bool = True) -> None:
        super().__init__()
        self.channels, self.kernel_size = channels, kernel_size
        self.stride, self.padding = stride or kernel_size, padding
        template = torch.full((channels, 1, kernel_size, kernel_size), 1.0 / kernel_size ** 2)
        if learn_template:
            self.template = nn.Parameter(template)
        else:
            self.register_buffer("template", template)
        gamma = 1.0 / kernel_size ** 2 if gamma_init is None else gamma_init  # None: gamma = 1/window size
        self.kfn = KernelFunction(kernel, channels, degree, c_init, gamma, sigma_init, learnable, per_unit)
        self.register_buffer("ones_filter", torch.ones(channels, 1, kernel_size, kernel_size), persistent=False)

    def _depthwise(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w, None, self.stride, self.padding, 1, self.channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kfn.kind == "linear":
            return self._depthwise(x, self.template.to(x.dtype))
        with _fp32_off_autocast(x.device.type):
            x32, t32 = x.float(), self.template.float()
            lin = self._depthwise(x32, t32)
            x_sq = w_sq = None
            if self.kfn.needs_norms:
                x_sq = self._depthwise(x32 * x32, self.ones_filter.float())
                w_sq = t32.pow(2).flatten(1).sum(1).view(1, -1, 1, 1)
            return self.kfn(lin, x_sq, w_sq, unit_dim=1)

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


def kernel_parameters(module: nn.Module) -> dict[str, float]:
    """Every kernel layer's learnt c / gamma / sigma as ``{"<layer>.<name>": value}`` (per-unit ones averaged)."""
    out: dict[str, float] = {}
    for name, sub in module.named_modules():
        if isinstance(sub, KernelFunction):
            layer = name.removesuffix(".kfn")
            for key, value in sub.values().items():
                out[f"{layer}.{key}"] = float(value.float().mean())
    return out
