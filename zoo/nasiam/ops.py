"""NASiam's MLP search space (Heuillet et al., arXiv 2302.00059): seven operations ``(in_dim, out_dim) -> nn.Module``.

The wrappers follow the authors' code: equal dims apply the op alone; a down-projection (in > out) is
Linear(no bias)-BN-ReLU before the op; an up-projection (in < out) is a plain Linear (bias), then the op only
for the pools. ``BatchNorm1d(out_dim)`` everywhere (the MoCo code passes ``out_dim`` as ``eps``: defect 5).
The MoCo code's ``linear_wrapper`` keeps the Linear's bias before BN (``linear_bias=True``); SimSiam's and SimCLR's
drop it. SimCLR's file lists hardswish before silu (``SIMCLR_PRIMITIVES``).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

#: The 7 candidates in the authors' order (argmax ties go to the first).
MLP_PRIMITIVES: tuple[str, ...] = (
    "maxpool_3x3", "avgpool_3x3", "identity", "linear_relu", "linear_silu", "linear_hardswish", "linear_elu",
)
#: The SimCLR code's order (``SimCLR/operations.py``): hardswish before silu.
SIMCLR_PRIMITIVES: tuple[str, ...] = (
    "maxpool_3x3", "avgpool_3x3", "identity", "linear_relu", "linear_hardswish", "linear_silu", "linear_elu",
)
#: The built-in ops whose ``in_dim >= out_dim`` form is Linear-BN-act (the code's ``linear_wrapper``).
LINEAR_OPS: frozenset[str] = frozenset({"linear_relu", "linear_silu", "linear_hardswish", "linear_elu"})
#: Operations without weights when in_dim == out_dim (the spec's "pool ops" plus identity).
PARAMETER_FREE: frozenset[str] = frozenset({"maxpool_3x3", "avgpool_3x3", "identity"})

MLPOpFactory = Callable[[int, int, bool], nn.Module]
MLP_OPS: dict[str, MLPOpFactory] = {}


class FeaturePool(nn.Module):
    """1-D max or average pooling (kernel 3, stride 1, padding 1) over the feature axis of an (N, D) tensor."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.pool = nn.MaxPool1d(3, 1, 1) if kind == "max" else nn.AvgPool1d(3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x.unsqueeze(1)).squeeze(1)

    def extra_repr(self) -> str:
        return f"kind={self.kind}"


def _down(in_dim: int, out_dim: int, affine: bool) -> list[nn.Module]:
    return [nn.Linear(in_dim, out_dim, bias=False), nn.BatchNorm1d(out_dim, affine=affine), nn.ReLU()]


def _pool_op(kind: str) -> MLPOpFactory:
    def make(in_dim: int, out_dim: int, affine: bool = True) -> nn.Module:
        bn = nn.BatchNorm1d(out_dim, affine=affine)
        if in_dim == out_dim:
            return nn.Sequential(FeaturePool(kind), bn)
        pre = _down(in_dim, out_dim, affine) if in_dim > out_dim else [nn.Linear(in_dim, out_dim)]
        return nn.Sequential(*pre, FeaturePool(kind), bn)
    return make


def _identity(in_dim: int, out_dim: int, affine: bool = True) -> nn.Module:
    if in_dim == out_dim:
        return nn.Identity()
    return nn.Sequential(*_down(in_dim, out_dim, affine)) if in_dim > out_dim else nn.Linear(in_dim, out_dim)


def _linear_act(act: Callable[[], nn.Module]) -> MLPOpFactory:
    def make(in_dim: int, out_dim: int, affine: bool = True, bias: bool = False) -> nn.Module:
        if in_dim < out_dim:  # up-projection: a plain Linear, the activation is dropped (authors' code)
            return nn.Linear(in_dim, out_dim)
        return nn.Sequential(nn.Linear(in_dim, out_dim, bias=bias), nn.BatchNorm1d(out_dim, affine=affine), act())
    return make


def register_mlp_op(name: str, factory: MLPOpFactory) -> None:
    """Add an MLP operation ``factory(in_dim, out_dim, affine)`` (refuses to overwrite)."""
    if name in MLP_OPS:
        raise ValueError(f"MLP operation {name!r} is already registered")
    MLP_OPS[name] = factory


def build_mlp_op(name: str, in_dim: int, out_dim: int, affine: bool = True, linear_bias: bool = False) -> nn.Module:
    """Instantiate MLP operation ``name`` mapping ``in_dim`` to ``out_dim`` features (``linear_bias``: the MoCo
    code's Linear bias in the built-in linear ops; other ops ignore it)."""
    if name not in MLP_OPS:
        raise ValueError(f"unknown NASiam operation {name!r}; registered: {sorted(MLP_OPS)}")
    if in_dim < 1 or out_dim < 1:
        raise ValueError(f"MLP op dims must be positive, got {in_dim} -> {out_dim}")
    if linear_bias and name in LINEAR_OPS:
        return MLP_OPS[name](in_dim, out_dim, affine, bias=True)
    return MLP_OPS[name](in_dim, out_dim, affine)


register_mlp_op("maxpool_3x3", _pool_op("max"))
register_mlp_op("avgpool_3x3", _pool_op("avg"))
register_mlp_op("identity", _identity)
register_mlp_op("linear_relu", _linear_act(nn.ReLU))
register_mlp_op("linear_silu", _linear_act(nn.SiLU))
register_mlp_op("linear_hardswish", _linear_act(nn.Hardswish))
register_mlp_op("linear_elu", _linear_act(nn.ELU))
