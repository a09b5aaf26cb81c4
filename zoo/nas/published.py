"""Published genotypes: DARTS V1/V2 (quark0/darts ``genotypes.py``) and the D-DARTS shipped genes.

D-DARTS genes are written compactly as ``OP:<to><from>`` tokens (e.g. ``SEP3:21`` = sep_conv_3x3 from
node 1 into node 2) and parsed here by a small explicit parser: no text is ever ``eval``-ed.
"""
from __future__ import annotations

from zoo.nas.genotype import CellGenotype, NestedGenotype

_ABBR = {"MAX": "max_pool_3x3", "AVG": "avg_pool_3x3", "SKIP": "skip_connect", "SEP3": "sep_conv_3x3",
         "SEP5": "sep_conv_5x5", "DIL3": "dil_conv_3x3", "DIL5": "dil_conv_5x5"}


def _genes(rows: list[str]) -> list[list[tuple[str, int, int]]]:
    out = []
    for row in rows:
        gene = []
        for tok in row.split():
            op, nodes = tok.split(":")
            gene.append((_ABBR[op], int(nodes[0]), int(nodes[1])))
        out.append(gene)
    return out


DARTS_V1 = CellGenotype(
    normal=[("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
)
DARTS_V2 = CellGenotype(
    normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
)

#: ``D-DARTS_threshold_sparse_cifar10_0.85_50`` (aheuillet/D-DARTS ``genotypes/``).
DDARTS_SPARSE_CIFAR10 = NestedGenotype(genes=_genes([
    "SEP3:21 MAX:20 SEP3:30 MAX:32 SEP3:40 MAX:42 MAX:50 DIL5:54",
    "SKIP:20 DIL5:21 SEP5:31 SEP5:32 DIL3:43 SEP5:42 SEP5:54 SEP5:50",
    "SEP5:21 SEP5:20 SEP3:31 MAX:32 SEP5:41 SKIP:40 DIL3:52 SEP5:50",
    "SEP5:20 SEP5:21 SEP5:32 SEP5:31 DIL3:42 DIL3:41 DIL5:52 SEP5:51",
    "DIL5:21 MAX:20 SEP5:32 MAX:30 SEP5:41 SEP5:43 DIL3:53 SEP5:52",
    "SEP5:21 SEP5:20 SEP5:31 SEP5:32 SEP5:42 DIL3:41 SEP3:51 SEP3:53",
    "SEP3:20 SEP5:21 DIL3:31 SKIP:32 SKIP:42 SKIP:40 DIL3:50 SEP5:51",
    "SEP5:21 SEP3:20 SEP5:32 DIL5:30 SEP5:43 DIL3:42 SEP3:52",
]), reductions=[2, 6])

#: ``D-DARTS_threshold_edge_cifar10_0.85_50``.
DDARTS_EDGE_CIFAR10 = NestedGenotype(genes=_genes([
    "DIL3:20 MAX:20 DIL3:21 SEP3:21 MAX:30 SEP3:30 DIL3:31 SEP3:31 DIL5:32 MAX:32 MAX:40 SEP3:40 SEP3:41 MAX:41 SEP5:42 MAX:42 SEP3:43 DIL3:43 DIL5:50 MAX:50 MAX:51 SEP5:51 SEP5:52 MAX:52 MAX:53 DIL5:53 MAX:54 DIL5:54",
    "SEP5:20 SKIP:20 SEP3:21 DIL5:21 MAX:30 DIL3:30 DIL3:31 SEP5:31 DIL3:32 SEP5:32 DIL3:40 DIL5:40 DIL5:41 SEP5:41 SEP3:42 SEP5:42 SEP3:43 DIL3:43 MAX:50 SEP5:50 SEP5:51 SKIP:51 SKIP:52 DIL3:52 DIL3:53 SEP3:53 DIL3:54 SEP5:54",
    "DIL5:20 SEP5:20 DIL3:21 SEP5:21 SKIP:30 SEP3:30 SEP5:31 SEP3:31 SEP5:32 MAX:32 SEP3:40 SKIP:40 DIL5:41 SEP5:41 DIL3:42 SEP3:42 DIL5:43 SEP3:43 SKIP:50 SEP5:50 MAX:51 SEP3:51 MAX:52 DIL3:52 SKIP:53 DIL5:53 SKIP:54 SEP5:54",
    "SKIP:20 SEP5:20 MAX:21 SEP5:21 SEP5:30 SEP3:30 MAX:31 SEP5:31 DIL5:32 SEP5:32 SEP3:40 SEP5:40 DIL3:41 SEP5:42 DIL3:42 DIL3:43 DIL5:43 DIL5:50 SEP3:50 DIL3:51 SEP5:51 DIL3:52 DIL5:52 SEP3:53 DIL5:53 SEP5:54",
    "DIL5:20 MAX:20 SEP3:21 DIL5:21 AVG:30 MAX:30 DIL5:31 SEP5:31 SEP3:32 SEP5:32 SKIP:40 DIL5:40 DIL3:41 SEP5:41 SEP3:42 SEP5:42 SKIP:43 SEP5:43 DIL3:50 MAX:50 DIL5:52 SEP5:52 DIL5:53 DIL3:53 DIL5:54 SEP3:54",
    "DIL5:20 SEP5:20 SEP3:21 SEP5:21 MAX:30 SEP5:30 SEP3:31 SEP5:31 SEP3:32 SEP5:32 SKIP:40 DIL3:40 SEP3:41 DIL3:41 DIL5:42 SEP5:42 SEP3:43 DIL3:43 SKIP:50 DIL5:50 DIL3:51 SEP3:51 SEP3:52 DIL5:52 DIL5:53 SEP3:53 SEP5:54 DIL3:54",
    "DIL5:20 SEP3:20 SEP3:21 SEP5:21 SEP3:30 SKIP:30 SEP3:31 DIL3:31 DIL5:32 SKIP:32 DIL3:40 SKIP:40 SEP5:41 SEP3:41 DIL5:42 SKIP:42 SKIP:43 DIL5:43 SKIP:50 DIL3:50 SKIP:51 SEP5:51 DIL5:52 SKIP:52 SKIP:53 SEP3:53 SKIP:54 DIL3:54",
    "DIL3:20 SEP3:20 SEP5:21 SEP5:30 DIL5:30 SEP5:32 DIL3:42 DIL5:43 SEP5:43 SEP3:52",
]), reductions=[2, 6])

#: ``D-DARTS_threshold_sparse_abl0.5_fair7_cifar100_0.85_50``.
DDARTS_SPARSE_CIFAR100 = NestedGenotype(genes=_genes([
    "SEP3:21 MAX:20 SEP3:30 SEP5:32 SEP5:43 SEP5:41 DIL3:53 MAX:50",
    "MAX:20 DIL5:21 MAX:30 MAX:32 SEP5:40 SEP3:43 MAX:54 SEP3:53",
    "AVG:20 SEP5:21 SEP5:31 SEP5:32 SEP5:43 SEP5:41 SEP5:52 SEP5:53",
    "MAX:21 SEP5:20 SEP5:31 DIL5:32 SEP5:41 SEP5:42 SEP5:52 SEP5:54",
    "MAX:21 MAX:20 SEP5:32 MAX:30 SEP5:41 AVG:40 SEP3:54 DIL3:53",
    "SEP5:20 SEP5:21 SEP5:32 SEP5:30 SEP5:43 SEP5:40 SEP5:53 SEP5:54",
    "SEP5:21 SEP5:20 SEP5:32 SEP5:30 SEP3:43 SEP3:42 SEP5:54 SEP5:53",
    "MAX:20 DIL5:32 MAX:30 SEP3:43 SEP5:42 SKIP:54 SEP3:53",
]), reductions=[2, 6])

PUBLISHED = {
    "DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2, "DARTS": DARTS_V2,
    "DDARTS_SPARSE_CIFAR10": DDARTS_SPARSE_CIFAR10, "DDARTS_EDGE_CIFAR10": DDARTS_EDGE_CIFAR10,
    "DDARTS_SPARSE_CIFAR100": DDARTS_SPARSE_CIFAR100,
}

#: Found by ``zoo fit --config configs/darts/tiny.yaml`` (corrupted digits, 3 cells, 3 nodes, seed 0).
DARTS_DIGITS = CellGenotype(
    normal=[("skip_connect", 1), ("skip_connect", 0), ("dil_conv_3x3", 2), ("skip_connect", 1),
            ("sep_conv_3x3", 1), ("dil_conv_3x3", 3)],
    reduce=[("dil_conv_3x3", 1), ("dil_conv_3x3", 0), ("sep_conv_3x3", 0), ("skip_connect", 2),
            ("sep_conv_3x3", 0), ("dil_conv_3x3", 3)],
    normal_concat=[2, 3, 4], reduce_concat=[2, 3, 4],
)
PUBLISHED["DARTS_DIGITS"] = DARTS_DIGITS

#: Found by ``zoo fit --config configs/d_darts/tiny.yaml`` (corrupted digits, 5 cells, reductions at 1 and 3, seed 0).
DDARTS_DIGITS = NestedGenotype(genes=[
    [("skip_connect", 2, 0), ("avg_pool_3x3", 3, 2), ("avg_pool_3x3", 3, 0), ("dil_conv_3x3", 4, 1), ("sep_conv_3x3", 4, 3)],
    [("dil_conv_3x3", 2, 1), ("avg_pool_3x3", 3, 1), ("dil_conv_3x3", 3, 2), ("dil_conv_3x3", 4, 2), ("dil_conv_3x3", 4, 0)],
    [("sep_conv_3x3", 2, 1), ("skip_connect", 2, 0), ("max_pool_3x3", 3, 0), ("dil_conv_3x3", 3, 2),
     ("avg_pool_3x3", 4, 1), ("dil_conv_3x3", 4, 2)],
    [("sep_conv_3x3", 2, 1), ("max_pool_3x3", 2, 0), ("skip_connect", 3, 0), ("dil_conv_3x3", 3, 2),
     ("sep_conv_3x3", 4, 1), ("avg_pool_3x3", 4, 3)],
    [("dil_conv_3x3", 4, 0)],
], reductions=[1, 3], concat=[2, 3, 4])
PUBLISHED["DDARTS_DIGITS"] = DDARTS_DIGITS
