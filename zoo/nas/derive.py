"""Derivation rules: from mixing weights (edges x ops) to a discrete genotype.

``darts_top2`` (DARTS), ``threshold_sparse`` / ``threshold_edge`` / ``threshold_complete`` (D-DARTS, on
sigmoid weights) and ``argmax_chain`` (one op per layer). Rows of ``weights`` are the edges of a cell
ordered node by node: node j (0-based) has edges from inputs 0 .. j+1.
"""
from __future__ import annotations

import warnings
from typing import Callable, Sequence

import torch

from zoo.nas.genotype import CellGenotype, ChainGenotype, Edge, NestedGenotype


def _node_rows(weights: torch.Tensor, steps: int) -> list[tuple[int, torch.Tensor]]:
    rows, offset = [], 0
    for j in range(steps):
        rows.append((offset, weights[offset:offset + 2 + j]))
        offset += 2 + j
    if offset != weights.shape[0]:
        raise ValueError(f"{weights.shape[0]} edges do not match {steps} nodes ({offset} edges expected)")
    return rows


def _steps_for(n_edges: int) -> int:
    steps, total = 0, 0
    while total < n_edges:
        total += 2 + steps
        steps += 1
    if total != n_edges:
        raise ValueError(f"{n_edges} edges is not a DARTS cell (2, 5, 9, 14, ... edges)")
    return steps


def darts_top2_cell(weights: torch.Tensor, primitives: Sequence[str]) -> list[tuple[str, int]]:
    """DARTS rule for one cell: per node the 2 strongest edges (max weight over ops except ``none``), argmax op on each."""
    w = weights.detach().float().cpu()
    allowed = [k for k, p in enumerate(primitives) if p != "none"]
    pairs: list[tuple[str, int]] = []
    for _, rows in _node_rows(w, _steps_for(w.shape[0])):
        strength = rows[:, allowed].max(dim=1).values
        best = sorted(range(rows.shape[0]), key=lambda i: -float(strength[i]))[:2]
        for i in best:
            k = allowed[int(rows[i, allowed].argmax())]
            pairs.append((primitives[k], i))
    return pairs


def darts_top2(normal: torch.Tensor, reduce: torch.Tensor, primitives: Sequence[str]) -> CellGenotype:
    """DARTS genotype from the normal and reduction cells' weights (softmax, or softmax x beta for PC-DARTS)."""
    n = darts_top2_cell(normal, primitives)
    steps = len(n) // 2
    concat = list(range(2, 2 + steps))
    return CellGenotype(normal=n, reduce=darts_top2_cell(reduce, primitives), normal_concat=concat, reduce_concat=concat)


def threshold_sparse(weights: torch.Tensor, primitives: Sequence[str], threshold: float = 0.85) -> list[Edge]:
    """D-DARTS default: per node the 2 strongest edges; keep each edge's argmax op only if its weight >= threshold."""
    w = weights.detach().float().cpu()
    gene: list[Edge] = []
    for j, (_, rows) in enumerate(_node_rows(w, _steps_for(w.shape[0]))):
        strength, arg = rows.max(dim=1)
        for i in sorted(range(rows.shape[0]), key=lambda i: -float(strength[i]))[:2]:
            if float(strength[i]) >= threshold:
                gene.append((primitives[int(arg[i])], j + 2, i))
    return gene


def threshold_edge(weights: torch.Tensor, primitives: Sequence[str], threshold: float = 0.85) -> list[Edge]:
    """D-DARTS: on every incoming edge keep each of its top-2 ops whose weight >= threshold."""
    w = weights.detach().float().cpu()
    gene: list[Edge] = []
    for j, (_, rows) in enumerate(_node_rows(w, _steps_for(w.shape[0]))):
        for i in range(rows.shape[0]):
            vals, idx = rows[i].topk(min(2, rows.shape[1]))
            gene.extend((primitives[int(k)], j + 2, i) for v, k in zip(vals, idx) if float(v) >= threshold)
    return gene


def threshold_complete(weights: torch.Tensor, primitives: Sequence[str], threshold: float = 0.85) -> list[Edge]:
    """D-DARTS: every op of every edge whose weight >= threshold."""
    w = weights.detach().float().cpu()
    gene: list[Edge] = []
    for j, (_, rows) in enumerate(_node_rows(w, _steps_for(w.shape[0]))):
        for i in range(rows.shape[0]):
            gene.extend((primitives[k], j + 2, i) for k in range(rows.shape[1]) if float(rows[i, k]) >= threshold)
    return gene


GENE_RULES: dict[str, Callable[..., list[Edge]]] = {
    "threshold_sparse": threshold_sparse, "threshold_edge": threshold_edge, "threshold_complete": threshold_complete,
}


def nested_genotype(cell_weights: Sequence[torch.Tensor], primitives: Sequence[str], reductions: Sequence[int],
                    rule: str = "threshold_sparse", threshold: float = 0.85) -> NestedGenotype:
    """One gene per cell with a threshold rule (or ``darts`` top-2); an emptied cell falls back to its strongest edge."""
    genes = []
    for c, w in enumerate(cell_weights):
        if rule == "darts":
            gene = [(op, 2 + k // 2, i) for k, (op, i) in enumerate(darts_top2_cell(w, primitives))]
        elif rule in GENE_RULES:
            gene = GENE_RULES[rule](w, primitives, threshold)
        else:
            raise ValueError(f"unknown derivation rule {rule!r}; expected darts or one of {sorted(GENE_RULES)}")
        if not _reachable(gene):
            gene = [_strongest_input_edge(w, primitives)]
            warnings.warn(f"cell {c}: no node is reachable from the cell inputs with weights >= {threshold}; "
                          f"kept its strongest input edge {gene[0]}", stacklevel=2)
        genes.append(gene)
    steps = _steps_for(cell_weights[0].shape[0])
    return NestedGenotype(genes=genes, reductions=list(reductions), concat=list(range(2, 2 + steps)))


def _reachable(gene: list[Edge]) -> bool:
    """True when at least one intermediate node gets an input from the cell inputs (directly or not)."""
    live = {0, 1}
    for to in sorted({t for _, t, _ in gene}):
        if any(f in live for _, t, f in gene if t == to):
            live.add(to)
    return len(live) > 2


def _strongest_input_edge(weights: torch.Tensor, primitives: Sequence[str]) -> Edge:
    """The (op, node, input) with the largest weight among edges leaving the two cell inputs."""
    w = weights.detach().float().cpu()
    best, best_val = None, -float("inf")
    for j, (offset, rows) in enumerate(_node_rows(w, _steps_for(w.shape[0]))):
        for i in (0, 1):
            k = int(rows[i].argmax())
            if float(rows[i, k]) > best_val:
                best, best_val = (primitives[k], j + 2, i), float(rows[i, k])
    return best


def argmax_chain(weights: torch.Tensor, primitives: Sequence[str]) -> ChainGenotype:
    """One op per layer: the argmax of each row (NASiam-style chain search spaces)."""
    return ChainGenotype(ops=[primitives[int(k)] for k in weights.detach().argmax(dim=-1)])
