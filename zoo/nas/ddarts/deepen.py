"""D-DARTS deepening: which searched gene each layer of an L-layer network uses, and where it strides.

Zoo default: the genotype's two reduction genes split the genes into 3 stages; the strided layers sit at
floor(L/3), floor(2L/3) and every other layer cycles (round-robin) through its stage's normal genes.
``reference_layout=True`` reproduces aheuillet/D-DARTS ``model.py`` exactly (quirks included, spec section 5).
"""
from __future__ import annotations

from zoo.nas.genotype import NestedGenotype


def deepen_layout(genotype: NestedGenotype, layers: int, reference_layout: bool = False) -> tuple[list[int], list[int]]:
    """Return (gene index per layer, strided layers) for an ``layers``-deep network built from ``genotype``."""
    g = len(genotype.genes)
    reds = list(genotype.reductions) or [g // 3, 2 * g // 3]
    if layers < g:
        raise ValueError(f"cannot build {layers} layers from {g} searched cells (the reference silently "
                         f"drops the last genes); use layers >= {g}")
    if len(reds) > 2:
        raise ValueError(f"deepening supports at most 2 reduction genes, the genotype has {reds}")
    if layers == g:
        return list(range(g)), reds
    if reference_layout:
        return [_reference_gene(i, layers, g) for i in range(layers)], reds
    if len(reds) != 2:
        raise ValueError(f"deepening needs exactly 2 reduction genes, the genotype has {reds}")
    r1, r2 = reds
    stages = [list(range(0, r1)), list(range(r1 + 1, r2)), list(range(r2 + 1, g))]
    if any(not s for s in stages):
        raise ValueError(f"reductions {reds} leave a stage without normal genes among {g} genes")
    l1, l2 = layers // 3, 2 * layers // 3
    layout = []
    for i in range(layers):
        if i == l1:
            layout.append(r1)
        elif i == l2:
            layout.append(r2)
        else:
            stage, start = (0, 0) if i < l1 else ((1, l1 + 1) if i < l2 else (2, l2 + 1))
            layout.append(stages[stage][(i - start) % len(stages[stage])])
    return layout, [l1, l2]


def _reference_gene(i: int, layers: int, g: int) -> int:
    """The reference code's gene map (operator-precedence slip in stage 1 kept on purpose)."""
    r1, r2 = g // 3, 2 * g // 3
    if i < layers // 3:
        return (i % g) // 3
    if i == layers // 3:
        return r1
    if i < 2 * layers // 3:
        return i % (r2 - 1 - r1) + r1 + 1
    if i == 2 * layers // 3:
        return r2
    return i % (g - 1 - r2) + r2 + 1
