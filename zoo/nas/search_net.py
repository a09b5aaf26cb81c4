"""The DARTS supernet: search cells of mixed edges, with shared (DARTS) or per-cell (D-DARTS) alphas.

Shared mode owns ``alpha_normal``/``alpha_reduce`` (edges x ops) used by every normal/reduction cell;
per-cell mode owns one alpha per cell. PC-DARTS edge normalisation adds betas (one per edge).
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zoo.nas.mixed import MixedOp, WeightFn, mixing_weights
from zoo.nas.ops import DARTS_PRIMITIVES, FactorizedReduce, ReLUConvBN


def num_edges(steps: int) -> int:
    """Edges of a cell with ``steps`` intermediate nodes: 2 + 3 + ... + (steps + 1)."""
    return sum(2 + j for j in range(steps))


def default_reductions(layers: int) -> list[int]:
    """DARTS places the reduction cells at floor(L/3) and floor(2L/3)."""
    return sorted({layers // 3, 2 * layers // 3}) if layers >= 3 else [layers - 1]


class SearchCell(nn.Module):
    """A DARTS search cell: two preprocessed inputs, ``steps`` nodes, each summing mixed edges from all predecessors."""

    def __init__(self, steps: int, multiplier: int, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool, primitives: Sequence[str], weight_fn: WeightFn, partial_channels: int = 1) -> None:
        super().__init__()
        self.reduction = reduction
        self.steps = steps
        self.multiplier = multiplier
        self.preprocess0 = (FactorizedReduce(c_pp, c, affine=False) if reduction_prev
                            else ReLUConvBN(c_pp, c, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=False)
        self.edges = nn.ModuleList(
            MixedOp(c, 2 if reduction and i < 2 else 1, primitives, weight_fn, partial_channels)
            for j in range(steps) for i in range(2 + j)
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                edge_weights: torch.Tensor | None = None) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for j in range(self.steps):
            terms = []
            for i, h in enumerate(states):
                out = self.edges[offset + i](h, weights[offset + i])
                terms.append(out if edge_weights is None else edge_weights[offset + i] * out)
            offset += len(states)
            states.append(sum(terms))
        return torch.cat(states[-self.multiplier:], dim=1)


class SearchNetwork(nn.Module):
    """DARTS search network (stem, L search cells, global pool, linear), with its architecture parameters.

    ``per_cell_alpha=True`` gives every cell its own alpha (D-DARTS, Heuillet et al., 2021);
    ``alpha_init`` is the std of the normal init (DARTS: 1e-3) or 0 for zeros (D-DARTS).
    """

    def __init__(self, C: int = 16, num_classes: int = 10, layers: int = 8, steps: int = 4, multiplier: int | None = None,
                 stem_multiplier: int = 3, primitives: Sequence[str] = DARTS_PRIMITIVES,
                 weight_fn: WeightFn = "softmax", per_cell_alpha: bool = False, partial_channels: int = 1,
                 edge_norm: bool = False, reductions: Sequence[int] | None = None, in_chans: int = 3,
                 alpha_init: float = 1e-3, mean: Sequence[float] = (0.4914, 0.4822, 0.4465),
                 std: Sequence[float] = (0.2470, 0.2435, 0.2616)) -> None:
        super().__init__()
        multiplier = steps if multiplier is None else multiplier
        self.primitives = tuple(primitives)
        self.steps, self.layers, self.weight_fn = steps, layers, weight_fn
        self.per_cell_alpha, self.edge_norm = per_cell_alpha, edge_norm
        self.reductions = sorted(reductions) if reductions is not None else default_reductions(layers)
        self.tau = 1.0  # Gumbel temperature, annealed by the search module
        self.deactivated: int | None = None  # D-DARTS ablation: this cell mixes with fresh U(0,1) weights
        self.register_buffer("mean", torch.tensor(list(mean)[:in_chans]).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std)[:in_chans]).view(1, -1, 1, 1), persistent=False)
        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_chans, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in self.reductions
            if reduction:
                c_curr *= 2
            self.cells.append(SearchCell(steps, multiplier, c_pp, c_p, c_curr, reduction, reduction_prev,
                                         self.primitives, weight_fn, partial_channels))
            reduction_prev = reduction
            c_pp, c_p = c_p, multiplier * c_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        e, o = num_edges(steps), len(self.primitives)
        init = (lambda: alpha_init * torch.randn(e, o)) if alpha_init > 0 else (lambda: torch.zeros(e, o))
        if per_cell_alpha:
            self.alphas = nn.ParameterList(nn.Parameter(init()) for _ in range(layers))
            self.betas = nn.ParameterList(nn.Parameter(1e-3 * torch.randn(e)) for _ in range(layers)) if edge_norm else None
        else:
            self.alpha_normal, self.alpha_reduce = nn.Parameter(init()), nn.Parameter(init())
            if edge_norm:
                self.beta_normal, self.beta_reduce = nn.Parameter(1e-3 * torch.randn(e)), nn.Parameter(1e-3 * torch.randn(e))

    # ---- parameter groups -----------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        """Architecture parameters (alphas, and betas with edge normalisation), kept out of the weight optimiser."""
        return [p for n, p in self.named_parameters() if n.startswith(("alpha", "beta"))]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith(("alpha", "beta"))]

    def cell_alpha(self, i: int) -> torch.Tensor:
        if self.per_cell_alpha:
            return self.alphas[i]
        return self.alpha_reduce if i in self.reductions else self.alpha_normal

    def cell_beta(self, i: int) -> torch.Tensor | None:
        if not self.edge_norm:
            return None
        if self.per_cell_alpha:
            return self.betas[i]
        return self.beta_reduce if i in self.reductions else self.beta_normal

    def edge_weights(self, beta: torch.Tensor) -> torch.Tensor:
        """PC-DARTS edge normalisation: softmax of beta over the incoming edges of each node."""
        parts, offset = [], 0
        for j in range(self.steps):
            parts.append(F.softmax(beta[offset:offset + 2 + j], dim=-1))
            offset += 2 + j
        return torch.cat(parts)

    def cell_weights(self, i: int) -> torch.Tensor:
        """Mixing weights of cell ``i`` (random U(0,1) when the cell is deactivated for the ablation loss)."""
        alpha = self.cell_alpha(i)
        if self.deactivated == i:
            return torch.rand_like(alpha)
        return mixing_weights(alpha, self.weight_fn, tau=self.tau)

    # ---- forward --------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            beta = self.cell_beta(i)
            ew = self.edge_weights(beta) if beta is not None else None
            s0, s1 = s1, cell(s0, s1, self.cell_weights(i), ew)
        return self.classifier(self.global_pooling(s1).flatten(1))
