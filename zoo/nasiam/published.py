"""Genotypes shipped by the NASiam authors (``<framework>/genotypes/*.txt`` in aheuillet/NASiam; spec section 4).

Names are ``<framework>_<dataset>_<backbone>``; ops are this zoo's names (``linear_`` kept, ``avgpool`` ->
``avgpool_3x3``). ``NASIAM_DIGITS`` is the head found by ``configs/nasiam/tiny_search.yaml``.
"""
from __future__ import annotations

from zoo.nas import ChainGenotype
from zoo.nasiam.heads import HeadGenotype


def _g(projector: list[str], predictor: list[str] | None = None) -> HeadGenotype:
    return HeadGenotype(ChainGenotype(projector), None if predictor is None else ChainGenotype(predictor))


R, S, H, E, I, A = "linear_relu", "linear_silu", "linear_hardswish", "linear_elu", "identity", "avgpool_3x3"

PUBLISHED: dict[str, HeadGenotype] = {
    "simsiam_cifar10_resnet18": _g([R, S, E, I, I, R], [H, A, A, H]),
    "simsiam_cifar10_resnet50": _g([S, H, H, H, S, S], [H, H, A, S]),
    "simsiam_cifar100_resnet50": _g([I, S, S, E, S, E], [E, E, E, H]),  # also the ImageNet head (authors' README)
    "moco_cifar10_resnet18": _g([A, A, A, A]),
    "moco_cifar100_resnet18": _g([A, A, A, A]),
    "moco_cifar10_resnet50": _g([I, A, A, A]),
    "simclr_cifar10_resnet50": _g([H, H, A, R, R, R]),  # the authors' file names this chain ``predictor``
    "nasiam_digits": _g([H, S, S], [H, E]),
}


def resolve_head(spec: str | dict | HeadGenotype) -> HeadGenotype:
    """A head genotype from a published name, a genotype.json path or its dict."""
    if isinstance(spec, HeadGenotype):
        return spec
    if isinstance(spec, dict):
        return HeadGenotype.from_dict(spec)
    if spec in PUBLISHED:
        return PUBLISHED[spec]
    if spec.endswith(".json") or "/" in spec:
        return HeadGenotype.load(spec)
    raise ValueError(f"unknown NASiam head {spec!r}: give a genotype.json path or one of {sorted(PUBLISHED)}")
