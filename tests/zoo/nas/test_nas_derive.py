"""Derivation rules on hand-made weights."""
import pytest
import torch

from zoo.nas.derive import argmax_chain, darts_top2, darts_top2_cell, nested_genotype, threshold_edge, threshold_sparse

PRIMS = ["none", "max_pool_3x3", "skip_connect", "sep_conv_3x3"]


def test_darts_top2_ignores_none_and_keeps_two_distinct_predecessors():
    w = torch.full((5, 4), 0.1)  # 2 nodes: edges (0->2), (1->2), (0->3), (1->3), (2->3)
    w[0, 0] = 0.9  # 'none' dominates edge 0->2 but is never chosen nor counted
    w[0, 3] = 0.2
    w[1, 2] = 0.5
    w[2, 1] = 0.3
    w[4, 3] = 0.6
    w[3, 2] = 0.25
    assert darts_top2_cell(w, PRIMS) == [("skip_connect", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 2), ("max_pool_3x3", 0)]
    g = darts_top2(w, w, PRIMS)
    assert g.normal_concat == [2, 3] and g.normal == g.reduce


def test_threshold_rules():
    prims = PRIMS[1:]
    w = torch.full((5, 3), 0.5)
    w[1, 2] = 0.95   # 1 -> 2 sep
    w[0, 0] = 0.9    # 0 -> 2 max
    w[0, 1] = 0.86   # second op on 0 -> 2, kept only by threshold_edge
    w[4, 1] = 0.7    # strongest into node 3 but below the threshold: node 3 keeps nothing
    assert threshold_sparse(w, prims, 0.85) == [("sep_conv_3x3", 2, 1), ("max_pool_3x3", 2, 0)]
    assert sorted(threshold_edge(w, prims, 0.85)) == sorted(
        [("max_pool_3x3", 2, 0), ("skip_connect", 2, 0), ("sep_conv_3x3", 2, 1)])


def test_empty_cell_falls_back_to_its_strongest_input_edge():
    w = torch.full((5, 3), 0.5)
    w[3, 1] = 0.6
    w[4, 2] = 0.9  # kept (node 2 -> node 3), but node 2 has no input: nothing is reachable
    with pytest.warns(UserWarning, match="strongest input edge"):
        g = nested_genotype([w], PRIMS[1:], reductions=[0])
    assert g.genes == [[("skip_connect", 3, 1)]]


def test_argmax_chain_and_bad_shapes():
    assert argmax_chain(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), ["a", "b"]).ops == ["b", "a"]
    with pytest.raises(ValueError, match="not a DARTS cell"):
        darts_top2_cell(torch.rand(6, 4), PRIMS)
