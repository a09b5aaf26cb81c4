"""Networks of the kernel-function studies (Mahmoudi et al. 2020/2023) with a kernel switch per layer type.

``conv_kernel``, ``pool_type`` and ``fc_kernel`` pick the layer of every block, so one network
class covers paper A's grid (KDL heads) and paper B's (conv x pool x FC kernels). The layouts per
dataset family are reconstructed (spec section 4): the papers' exact architectures were not read.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.core.verbs import ClassifierVerbs
from zoo.kdl.kernels import KERNELS, KernelConv2d, KernelLinear, KernelPool2d

POOL_TYPES = ("max", "avg", *(f"kernel_{k}" for k in KERNELS))

# conv widths and "P" (a 2x2 pool); hidden FC sizes; dropout; default input (channels, size) and
# normalisation (digits: none, as in the spec's prototype; others: (x - 0.5) / 0.5); "poly_input_norm": what
# ``conv_input_norm=None`` puts in front of the polynomial kernel convs after the first (see KernelNet): "rms" in
# the deep VGG layouts (8 or 13 kernel convs), "none" (the spec's plain conv-BN-ReLU) in the others
ARCHS: dict[str, dict[str, Any]] = {
    # spec section 8 head study: Flatten -> FC/KDL(64 -> 128) -> ReLU -> Linear(128 -> 10)
    "digits_mlp": {"cfg": [], "hidden": [128], "dropout": 0.0, "in_chans": 1, "input_size": 8,
                   "mean": 0.0, "std": 1.0},
    # spec section 8 conv/pool study: [conv8-BN-ReLU-P] [conv32-BN-ReLU-P] -> 128 -> 64 -> 10
    "digits_cnn": {"cfg": [8, "P", 32, "P"], "hidden": [64], "dropout": 0.2, "in_chans": 1, "input_size": 8,
                   "mean": 0.0, "std": 1.0},
    # MNIST / Fashion-MNIST: [conv32]x2 P [conv64]x2 P -> FC/KDL 512 -> dropout 0.5 -> 10
    "mnist_cnn": {"cfg": [32, 32, "P", 64, 64, "P"], "hidden": [512], "dropout": 0.5, "in_chans": 1,
                  "input_size": 28},
    # CIFAR-10: VGG-11 layout with BN -> FC/KDL 512 -> FC/KDL 512 -> 10
    "cifar_vgg11": {"cfg": [64, "P", 128, "P", 256, 256, "P", 512, 512, "P", 512, 512, "P"],
                    "hidden": [512, 512], "dropout": 0.5, "in_chans": 3, "input_size": 32,
                    "poly_input_norm": "rms"},
    # RAF-DB / ExpW: VGG-16 layout (13 convs, 5 pools) at 100x100 -> FC/KDL 1024 x2 -> 7
    "fer_vgg16": {"cfg": [64, 64, "P", 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P", 512, 512, 512, "P"],
                  "hidden": [1024, 1024], "dropout": 0.5, "in_chans": 3, "input_size": 100,
                  "poly_input_norm": "rms"},
    # FER2013: the same VGG-16 layout without the 5th pool, 48x48 grayscale
    "fer2013_vgg16": {"cfg": [64, 64, "P", 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P", 512, 512, 512],
                      "hidden": [1024, 1024], "dropout": 0.5, "in_chans": 1, "input_size": 48,
                      "poly_input_norm": "rms"},
}


class KernelNet(ClassifierVerbs, nn.Module):
    """VGG-style CNN (or MLP when ``cfg`` is empty) whose conv, pool and hidden FC layers are kernel layers.

    Conv blocks are conv-BN-ReLU (BN keeps polynomial outputs bounded in training); the logits layer stays
    linear unless ``kdl_on_logits``. Inputs are images in [0, 1], normalised inside with ``mean``/``std``.

    ``conv_input_norm`` (a zoo addition, not in the papers): ``"rms"`` makes every kernel conv after the first
    divide its input by the sample's RMS (:class:`KernelConv2d` ``input_norm``), ``"none"`` is the spec's plain
    conv-BN-ReLU stack, ``None`` (default) takes the layout's ``poly_input_norm`` when ``conv_kernel="poly"``
    ("rms" in cifar_vgg11, fer_vgg16 and fer2013_vgg16) and ``"none"`` otherwise. Why: BN bounds a polynomial
    conv's output only with batch statistics. In eval mode it applies running statistics, which at init are the
    identity and in the first tens of steps lag the weights; L stacked (x.w + c)^d layers then act (between the
    ReLUs) as a degree-d^L polynomial of the image (2^8 in the CIFAR VGG-11) that amplifies any mismatch until fp32
    overflows: NaN val/test losses after 2 steps of the CIFAR/FER configs (issue 13). The per-sample RMS stops the
    compounding. The first conv sees the normalised image, bounded, and stays plain.
    """

    def __init__(
        self,
        arch: str = "digits_cnn",
        num_classes: int = 10,
        in_chans: int | None = None,
        input_size: int | None = None,
        conv_kernel: str = "linear",
        pool_type: str = "max",
        fc_kernel: str = "linear",
        degree: int = 2,
        c_init: float = 1.0,
        gamma_init: float | None = 0.5,
        conv_gamma_init: float | None = None,
        sigma_init: float = 2.0,
        pool_degree: int = 2,
        pool_c_init: float = 0.0,
        learn_kernel_params: bool = True,
        per_unit: bool = False,
        bias_inside: bool = False,
        kdl_on_logits: bool = False,
        fc_norm: str = "none",
        conv_input_norm: str | None = None,
        dropout: float | None = None,
        mean: float | None = None,
        std: float | None = None,
    ) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown arch {arch!r}; expected one of {sorted(ARCHS)}")
        for name, value, allowed in (("conv_kernel", conv_kernel, KERNELS), ("fc_kernel", fc_kernel, KERNELS),
                                     ("pool_type", pool_type, POOL_TYPES), ("fc_norm", fc_norm, ("none", "bn", "ln")),
                                     ("conv_input_norm", conv_input_norm, (None, *KernelConv2d.INPUT_NORMS))):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; expected one of {allowed}")
        spec = ARCHS[arch]
        if conv_input_norm is None:
            conv_input_norm = spec.get("poly_input_norm", "none") if conv_kernel == "poly" else "none"
        in_chans = spec["in_chans"] if in_chans is None else in_chans
        size = spec["input_size"] if input_size is None else input_size
        dropout = spec["dropout"] if dropout is None else dropout
        mean = spec.get("mean", 0.5) if mean is None else mean
        std = spec.get("std", 0.5) if std is None else std
        self.arch, self.num_classes = arch, num_classes
        self.register_buffer("mean", torch.tensor(float(mean)), persistent=False)
        self.register_buffer("std", torch.tensor(float(std)), persistent=False)
        common = {"degree": degree, "c_init": c_init, "sigma_init": sigma_init, "learnable": learn_kernel_params,
                  "per_unit": per_unit}

        layers: list[nn.Module] = []
        chans, first = in_chans, True
        for item in spec["cfg"]:
            if item == "P":
                layers.append(self._pool(pool_type, chans, pool_degree, pool_c_init, gamma_init, sigma_init,
                                         learn_kernel_params, per_unit))
                size //= 2
                continue
            conv = KernelConv2d(chans, item, 3, padding=1, bias=False, kernel=conv_kernel, gamma_init=conv_gamma_init,
                                bias_inside=False, input_norm="none" if first else conv_input_norm, **common)
            layers += [conv, nn.BatchNorm2d(item), nn.ReLU(inplace=True)]
            chans, first = item, False
        if size < 1:
            raise ValueError(f"input_size is too small for {arch!r}: the feature map vanishes")
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten(1)

        hidden: list[nn.Module] = []
        width = chans * size * size
        for units in spec["hidden"]:
            if fc_norm != "none":
                hidden.append(nn.BatchNorm1d(width) if fc_norm == "bn" else nn.LayerNorm(width))
            hidden += [KernelLinear(width, units, kernel=fc_kernel, gamma_init=gamma_init, bias_inside=bias_inside,
                                    **common), nn.ReLU(inplace=True)]
            if dropout > 0:
                hidden.append(nn.Dropout(dropout))
            width = units
        self.hidden = nn.Sequential(*hidden)
        self.num_features = width
        logits_kernel = fc_kernel if kdl_on_logits else "linear"
        self.head = KernelLinear(width, num_classes, kernel=logits_kernel, gamma_init=gamma_init,
                                 bias_inside=bias_inside if kdl_on_logits else False, **common)
        self.register_load_state_dict_pre_hook(_accept_lightning_state_dict)

    @staticmethod
    def _pool(pool_type: str, chans: int, degree: int, c_init: float, gamma_init: float | None, sigma_init: float,
              learnable: bool, per_unit: bool) -> nn.Module:
        if pool_type == "max":
            return nn.MaxPool2d(2)
        if pool_type == "avg":
            return nn.AvgPool2d(2)
        return KernelPool2d(chans, 2, kernel=pool_type.removeprefix("kernel_"), degree=degree, c_init=c_init,
                            gamma_init=gamma_init, sigma_init=sigma_init, learnable=learnable, per_unit=per_unit)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.hidden(self.flatten(x))
        return x if pre_logits else self.head(x)


def _accept_lightning_state_dict(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    """Let ``KernelNet.load_state_dict`` take a ``KernelClassifier`` checkpoint's state (keys ``net.*``)."""
    if prefix == "" and state_dict and all(k.startswith("net.") for k in state_dict):
        for key in list(state_dict):
            state_dict[key[len("net."):]] = state_dict.pop(key)
