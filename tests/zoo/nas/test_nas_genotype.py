"""Genotype dataclasses: JSON round trips, validation and the published cells."""
import json

import pytest

from zoo.nas.genotype import (CellGenotype, ChainGenotype, NestedGenotype, from_json, load_genotype, resolve_genotype,
                              save_genotype, to_graphviz, to_json)
from zoo.nas.published import DARTS_V2, DDARTS_EDGE_CIFAR10, DDARTS_SPARSE_CIFAR10, PUBLISHED


@pytest.mark.parametrize("g", [DARTS_V2, DDARTS_SPARSE_CIFAR10, ChainGenotype(["a", "b"])])
def test_json_round_trip(g, tmp_path):
    assert from_json(to_json(g)) == g
    assert load_genotype(save_genotype(g, tmp_path / "g.json")) == g


def test_published_cells_match_the_spec():
    assert DARTS_V2.normal[:2] == [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)]
    assert DARTS_V2.normal[-1] == ("dil_conv_3x3", 2) and DARTS_V2.reduce[-1] == ("max_pool_3x3", 1)
    assert PUBLISHED["DARTS_V1"].reduce[-1] == ("avg_pool_3x3", 0)
    assert len(DDARTS_SPARSE_CIFAR10.genes) == 8 and [len(g) for g in DDARTS_SPARSE_CIFAR10.genes][-1] == 7
    assert DDARTS_SPARSE_CIFAR10.reductions == [2, 6]
    assert [len(g) for g in DDARTS_EDGE_CIFAR10.genes] == [28, 28, 28, 26, 26, 28, 28, 10]


def test_malformed_genotypes_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="not valid JSON"):
        from_json("Genotype(normal=[('sep_conv_3x3', 0)])")  # python text is never evaluated
    with pytest.raises(ValueError, match="unknown operation"):
        CellGenotype(normal=[("conv_9x9", 0), ("skip_connect", 1)], reduce=[])
    with pytest.raises(ValueError, match="input index"):
        CellGenotype(normal=[("skip_connect", 0), ("skip_connect", 2)], reduce=[])
    with pytest.raises(ValueError, match="from < to"):
        NestedGenotype(genes=[[("skip_connect", 2, 3)]], reductions=[])
    with pytest.raises(ValueError, match="type"):
        from_json(json.dumps({"normal": []}))
    with pytest.raises(FileNotFoundError, match="no genotype file"):
        load_genotype(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="unknown genotype"):
        resolve_genotype("DARTS_V9")


def test_resolve_and_graphviz(tmp_path):
    path = save_genotype(DARTS_V2, tmp_path / "genotype.json")
    assert resolve_genotype(str(path)) == DARTS_V2 == resolve_genotype("DARTS_V2") == resolve_genotype(DARTS_V2.to_dict())
    dot = to_graphviz(DARTS_V2)
    assert dot.startswith("digraph") and dot.count("->") == 16 and 'label="dil_conv_3x3"' in dot
