"""NASiam heads (Heuillet et al., arXiv 2302.00059): searchable and fixed chains of MLP operations, the
hand-designed SimSiam / MoCo v2 / SimCLR heads they replace, and the head genotype (projector + predictor).

A NASiam cell is a chain: layer l applies one mixed operation to the previous output,
h_{l+1} = sum_o softmax(alpha_l)_o o(h_l), with alpha (layers x ops) initialised to zeros (uniform).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from zoo.nas import ChainGenotype, argmax_chain, mixing_weights
from zoo.nasiam.ops import MLP_PRIMITIVES, build_mlp_op


class MLPMixedOp(nn.Module):
    """One searchable layer: every candidate MLP operation from ``in_dim`` to ``out_dim``, mixed by given weights.

    ``zoo.nas.MixedOp`` builds ops as ``OPS[name](C, stride, affine)`` (convolutions); MLP ops need
    ``(in_dim, out_dim)``, so NASiam composes its own mixed layer over the same ``mixing_weights``.
    """

    def __init__(self, in_dim: int, out_dim: int, primitives: Sequence[str] = MLP_PRIMITIVES, affine: bool = True,
                 linear_bias: bool = False) -> None:
        super().__init__()
        self.primitives = tuple(primitives)
        self.ops = nn.ModuleList(build_mlp_op(p, in_dim, out_dim, affine, linear_bias) for p in self.primitives)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if weights.shape[-1] != len(self.ops):
            raise ValueError(f"MLPMixedOp has {len(self.ops)} ops but got {weights.shape[-1]} weights")
        return sum(w * op(x) for w, op in zip(weights, self.ops))


def _check_dims(dims: Sequence[int]) -> list[int]:
    dims = [int(d) for d in dims]
    if len(dims) < 2 or min(dims) < 1:
        raise ValueError(f"a chain needs at least two positive dims (in, out), got {dims}")
    return dims


class SearchChain(nn.Module):
    """Searchable NASiam cell: ``len(dims) - 1`` mixed layers; ``alpha`` is an ``nn.Parameter`` (defect 1 fixed).

    ``with_alpha=False`` builds a weight-only copy that takes its mixing weights from elsewhere (the MoCo key encoder).
    """

    def __init__(self, dims: Sequence[int], primitives: Sequence[str] = MLP_PRIMITIVES, affine: bool = True,
                 with_alpha: bool = True, alpha_init: float = 0.0, linear_bias: bool = False) -> None:
        super().__init__()
        self.dims = _check_dims(dims)
        self.primitives = tuple(primitives)
        self.layers = nn.ModuleList(MLPMixedOp(a, b, self.primitives, affine, linear_bias)
                                    for a, b in zip(self.dims, self.dims[1:]))
        if with_alpha:
            self.alpha = nn.Parameter(torch.full((len(self.layers), len(self.primitives)), float(alpha_init)))
        else:
            self.alpha = None

    def mixing_weights(self) -> torch.Tensor:
        """softmax(alpha) per layer (rows = layers), with gradient."""
        if self.alpha is None:
            raise ValueError("this SearchChain has no alpha of its own; pass weights to forward()")
        return mixing_weights(self.alpha, "softmax")

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        w = self.mixing_weights() if weights is None else weights
        for layer, wl in zip(self.layers, w):
            x = layer(x, wl)
        return x

    def genotype(self) -> ChainGenotype:
        """Derivation ("sparse" in the authors' code): the argmax operation of each layer."""
        return argmax_chain(self.mixing_weights().detach(), self.primitives)


class FixedChain(nn.Sequential):
    """A derived NASiam cell: one operation per layer (with the search space's wrappers, affine BN)."""

    def __init__(self, dims: Sequence[int], ops: Sequence[str], linear_bias: bool = False) -> None:
        dims = _check_dims(dims)
        if len(ops) != len(dims) - 1:
            raise ValueError(f"a chain over dims {dims} needs {len(dims) - 1} ops, got {len(ops)}: {list(ops)}")
        super().__init__(*(build_mlp_op(op, a, b, linear_bias=linear_bias) for op, a, b in zip(ops, dims, dims[1:])))
        self.dims, self.ops = dims, list(ops)


def linear_bn_relu(in_dim: int, out_dim: int) -> list[nn.Module]:
    return [nn.Linear(in_dim, out_dim, bias=False), nn.BatchNorm1d(out_dim), nn.ReLU(inplace=True)]


def standard_chain(framework: str, dims: Sequence[int]) -> nn.Sequential:
    """The hand-designed head a NASiam cell replaces (the baseline), over the same in/out dims.

    SimSiam projector: ``len(dims) - 1`` x [Linear-BN-ReLU]; SimSiam predictor: Linear-BN-ReLU-Linear;
    MoCo v2: Linear-ReLU (then the fixed Linear to 128); SimCLR: Linear-BN-ReLU-Linear.
    """
    dims = _check_dims(dims)
    if framework == "simsiam":
        return nn.Sequential(*[m for a, b in zip(dims, dims[1:]) for m in linear_bn_relu(a, b)])
    if framework == "simsiam_predictor":
        return nn.Sequential(*linear_bn_relu(dims[0], dims[1]), nn.Linear(dims[1], dims[-1]))
    if framework == "moco":
        return nn.Sequential(nn.Linear(dims[0], dims[-1]), nn.ReLU(inplace=True))
    if framework == "simclr":
        return nn.Sequential(*linear_bn_relu(dims[0], dims[1]), nn.Linear(dims[1], dims[-1]))
    raise ValueError(f"unknown standard head {framework!r}")


@dataclass(frozen=True)
class HeadGenotype:
    """A NASiam genotype: the projector chain C_e and (SimSiam) the predictor chain C_p."""

    projector: ChainGenotype
    predictor: ChainGenotype | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": "HeadGenotype", "projector": list(self.projector.ops),
                "predictor": None if self.predictor is None else list(self.predictor.ops)}

    @classmethod
    def from_dict(cls, data: Any, source: str = "genotype") -> "HeadGenotype":
        if not isinstance(data, dict) or data.get("type") != "HeadGenotype" or "projector" not in data:
            raise ValueError(f"{source}: expected a dict with type 'HeadGenotype' and a 'projector' op list, found {data!r}")
        for key in ("projector", "predictor"):
            ops = data.get(key)
            if ops is not None and (not isinstance(ops, list) or not all(isinstance(o, str) for o in ops)):
                raise ValueError(f"{source}: {key!r} must be a list of operation names, found {ops!r}")
        pred = data.get("predictor")
        return cls(ChainGenotype(data["projector"]), None if pred is None else ChainGenotype(pred))

    @classmethod
    def load(cls, path: str | Path) -> "HeadGenotype":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no NASiam genotype at {path} (expected the genotype.json of a NASiam search)")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from err
        return cls.from_dict(data, str(path))


def head_figure(genotype: HeadGenotype, dims: dict[str, Sequence[int]] | None = None):
    """A matplotlib figure of the derived head: one row of boxes per chain, labelled op and dims."""
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch

    chains = [("projector C_e", genotype.projector.ops)]
    if genotype.predictor is not None:
        chains.append(("predictor C_p", genotype.predictor.ops))
    width = max(len(ops) for _, ops in chains)
    fig = Figure(figsize=(1.6 * width + 1.5, 1.3 * len(chains)))
    axes = fig.subplots(len(chains), 1, squeeze=False)[:, 0]
    for ax, (name, ops) in zip(axes, chains):
        d = (dims or {}).get(name.split()[0])
        for i, op in enumerate(ops):
            color = "tab:orange" if "pool" in op else ("tab:gray" if op == "identity" else "tab:blue")
            ax.add_patch(FancyBboxPatch((i * 1.6, 0), 1.3, 0.8, boxstyle="round,pad=0.05", color=color, alpha=0.8))
            label = op.replace("linear_", "") + (f"\n{d[i]}->{d[i + 1]}" if d else "")
            ax.text(i * 1.6 + 0.65, 0.4, label, ha="center", va="center", fontsize=7, color="white")
            if i:
                ax.annotate("", xy=(i * 1.6, 0.4), xytext=(i * 1.6 - 0.3, 0.4), arrowprops={"arrowstyle": "->"})
        ax.set_xlim(-0.2, 1.6 * width)
        ax.set_ylim(-0.2, 1.0)
        ax.set_title(name, fontsize=8, loc="left")
        ax.axis("off")
    return fig
