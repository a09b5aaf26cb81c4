"""Differentiable architecture search: the DARTS core (Liu et al., 2019; DNAS survey, Heuillet et al., 2023)
and D-DARTS (Heuillet et al., 2021).

Public API: the op registry (``OPS``, ``register_op``), ``MixedOp``, genotypes with JSON I/O, derivation rules,
``SearchNetwork``, ``BilevelSearchModule``, ``DDartsSearchModule``, ``DartsNetwork`` and ``DartsEvalModule``.
"""
from __future__ import annotations

from zoo.nas.cells import DartsNetwork, DiscreteCell, drop_path
from zoo.nas.ddarts.deepen import deepen_layout
from zoo.nas.derive import argmax_chain, darts_top2, nested_genotype, threshold_edge, threshold_sparse
from zoo.nas.genotype import (CellGenotype, ChainGenotype, NestedGenotype, from_json, load_genotype, resolve_genotype,
                              save_genotype, to_graphviz, to_json)
from zoo.nas.mixed import MixedOp, channel_shuffle, mixing_weights
from zoo.nas.ops import DARTS_PRIMITIVES, DARTOPTI_PRIMITIVES, FAIR_PRIMITIVES, OPS, build_op, register_op
from zoo.nas.published import PUBLISHED
from zoo.nas.search_net import SearchNetwork
from zoo.registry import Weights, register_model

__all__ = [
    "OPS", "register_op", "build_op", "DARTS_PRIMITIVES", "FAIR_PRIMITIVES", "DARTOPTI_PRIMITIVES", "MixedOp",
    "mixing_weights", "channel_shuffle", "CellGenotype", "NestedGenotype", "ChainGenotype", "to_json", "from_json",
    "save_genotype", "load_genotype", "resolve_genotype", "to_graphviz", "darts_top2", "threshold_sparse",
    "threshold_edge", "nested_genotype", "argmax_chain", "SearchNetwork", "DartsNetwork", "DiscreteCell",
    "drop_path", "deepen_layout", "PUBLISHED", "BilevelSearchModule", "DDartsSearchModule", "DartsEvalModule",
]

PAPER = "DARTS (Liu et al., ICLR 2019) / DNAS survey (Heuillet et al., 2023)"
PAPER_DD = "D-DARTS (Heuillet et al., arXiv 2108.09306)"
_EVAL = "zoo.nas.module.DartsEvalModule"
_SMALL = {"C": 4, "layers": 3, "auxiliary": False, "drop_path_prob": 0.0}


def __getattr__(name: str):
    """Lightning modules are imported lazily so ``import zoo.nas`` stays cheap."""
    if name == "BilevelSearchModule":
        from zoo.nas.search import BilevelSearchModule
        return BilevelSearchModule
    if name == "DDartsSearchModule":
        from zoo.nas.ddarts.search import DDartsSearchModule
        return DDartsSearchModule
    if name == "DartsEvalModule":
        from zoo.nas.module import DartsEvalModule
        return DartsEvalModule
    raise AttributeError(f"module 'zoo.nas' has no attribute {name!r}")


def _net(defaults: dict, kwargs: dict) -> DartsNetwork:
    return DartsNetwork(**{**defaults, **kwargs})


@register_model(paper=PAPER, module=_EVAL, module_kwargs={"genotype": "DARTS_V2", **_SMALL})
def darts_v2_cifar10(**kwargs) -> DartsNetwork:
    """DARTS V2 (second-order cell) CIFAR-10 network: 20 cells, C=36 (3.349 M params, 528 M MACs at 32x32)."""
    return _net({"genotype": "DARTS_V2", "C": 36, "layers": 20, "num_classes": 10}, kwargs)


@register_model(paper=PAPER, module=_EVAL, module_kwargs={"genotype": "DARTS_V1", **_SMALL})
def darts_v1_cifar10(**kwargs) -> DartsNetwork:
    """DARTS V1 (first-order cell) CIFAR-10 network: 20 cells, C=36 (3.169 M params, 501 M MACs)."""
    return _net({"genotype": "DARTS_V1", "C": 36, "layers": 20, "num_classes": 10}, kwargs)


@register_model(paper=PAPER, module=_EVAL, module_kwargs={"genotype": "DARTS_V2", "stem": "imagenet", **_SMALL, "C": 8})
def darts_v2_imagenet(**kwargs) -> DartsNetwork:
    """DARTS V2 ImageNet (mobile) network: 14 cells, C=48, 1000 classes (4.719 M params, 530 M MACs at 224x224)."""
    return _net({"genotype": "DARTS_V2", "C": 48, "layers": 14, "num_classes": 1000, "stem": "imagenet"}, kwargs)


@register_model(paper=PAPER_DD, module=_EVAL, module_kwargs={"genotype": "DDARTS_SPARSE_CIFAR10", **_SMALL, "layers": 8})
def ddarts_sparse_cifar10(**kwargs) -> DartsNetwork:
    """D-DARTS shipped threshold_sparse CIFAR-10 genotype, 8 layers x C=36 (1.244 M params, 255 M MACs)."""
    return _net({"genotype": "DDARTS_SPARSE_CIFAR10", "C": 36, "layers": 8, "num_classes": 10}, kwargs)


@register_model(paper=PAPER_DD, module=_EVAL, module_kwargs={"genotype": "DDARTS_EDGE_CIFAR10", **_SMALL, "layers": 8})
def ddarts_edge_cifar10(**kwargs) -> DartsNetwork:
    """D-DARTS shipped threshold_edge CIFAR-10 genotype (default 8 layers x C=36)."""
    return _net({"genotype": "DDARTS_EDGE_CIFAR10", "C": 36, "layers": 8, "num_classes": 10}, kwargs)


@register_model(paper=PAPER_DD, module=_EVAL,
                module_kwargs={"genotype": "DDARTS_SPARSE_CIFAR100", **_SMALL, "layers": 8, "num_classes": 100})
def ddarts_sparse_cifar100(**kwargs) -> DartsNetwork:
    """D-DARTS shipped threshold_sparse CIFAR-100 genotype (abl0.5_fair7), 8 layers x C=36, 100 classes."""
    return _net({"genotype": "DDARTS_SPARSE_CIFAR100", "C": 36, "layers": 8, "num_classes": 100}, kwargs)


@register_model(paper=PAPER, module="zoo.nas.search.BilevelSearchModule",
                module_kwargs={"C": 4, "layers": 3, "steps": 2, "reductions": [1, 2]})
def darts_supernet(**kwargs) -> SearchNetwork:
    """The DARTS search supernet (8 cells, C=16, 8 ops, shared softmax alphas)."""
    return SearchNetwork(**{"C": 16, "layers": 8, **kwargs})


@register_model(paper=PAPER_DD, module="zoo.nas.ddarts.search.DDartsSearchModule",
                module_kwargs={"C": 4, "layers": 3, "steps": 2, "reductions": [1, 2]})
def ddarts_supernet(**kwargs) -> SearchNetwork:
    """The D-DARTS search supernet: per-cell sigmoid alphas initialised to 0, 7 ops (no ``none``)."""
    return SearchNetwork(**{"C": 16, "layers": 8, "primitives": FAIR_PRIMITIVES, "weight_fn": "sigmoid",
                            "per_cell_alpha": True, "alpha_init": 0.0, **kwargs})


_DIGITS = {"genotype": "DARTS_DIGITS", "C": 8, "layers": 3, "num_classes": 10, "in_chans": 3, "auxiliary": False,
           "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


@register_model(paper=PAPER, module=_EVAL, module_kwargs={**_DIGITS, "C": 4, "auxiliary": False},
                weights=Weights(tag="digits-corrupted", sha256="14dabfc7336b3edae5c58d2901aa657cfb6ab90c6f2de0918f54661fe1b5b7f3",
                                path="weights/darts_digits.pt",
                                metadata={"config": "configs/darts/tiny_eval.yaml", "test_acc": 0.4447}))
def darts_digits(**kwargs) -> DartsNetwork:
    """The tiny config's network: the genotype searched on corrupted digits, 3 cells, C=8 (zoo.load("darts_digits"))."""
    return _net(_DIGITS, kwargs)


_DD_DIGITS = {**_DIGITS, "genotype": "DDARTS_DIGITS", "layers": 8}


@register_model(paper=PAPER_DD, module=_EVAL, module_kwargs={**_DD_DIGITS, "C": 4},
                weights=Weights(tag="digits-corrupted", sha256="67b61c21d5b1683afdcf65a48f669fa942e790d93d769c232423d6cbd6ff4f5b",
                                path="weights/ddarts_digits.pt",
                                metadata={"config": "configs/d_darts/tiny_eval.yaml", "test_acc": 0.4668}))
def ddarts_digits(**kwargs) -> DartsNetwork:
    """The D-DARTS tiny config's network: 5 per-cell genes searched on corrupted digits, deepened to 8 layers, C=8."""
    return _net(_DD_DIGITS, kwargs)
