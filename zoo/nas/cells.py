"""Discrete evaluation networks of the DARTS family: cells with variable in-degree, drop-path, auxiliary heads.

A cell is a list of (op, to, from) triples: DARTS cells are the in-degree-2 case; D-DARTS ``DCOCell``s may
keep 0..n inputs per node, and nodes left without input are dropped from the output concat.
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import nn

from zoo.core.verbs import ClassifierVerbs
from zoo.nas.genotype import AnyGenotype, CellGenotype, Edge, NestedGenotype, resolve_genotype
from zoo.nas.ops import FactorizedReduce, ReLUConvBN, build_op, is_identity

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Drop whole samples of a branch with probability ``drop_prob``, rescaling the kept ones (DARTS)."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class DiscreteCell(nn.Module):
    """Evaluation cell from (op, to, from) triples; node = sum of its kept ops, output = concat of live nodes.

    ``drop_path_mode="op"`` drops each non-identity op (DARTS); ``"node"`` drops each node's sum (D-DARTS).
    """

    def __init__(self, edges: Sequence[Edge], c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool,
                 drop_path_mode: Literal["op", "node"] = "op", concat: Sequence[int] | None = None) -> None:
        super().__init__()
        self.reduction, self.drop_path_mode = reduction, drop_path_mode
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0)
        live, kept = {0, 1}, []
        for to in sorted({t for _, t, _ in edges}):
            into = [(op, t, f) for op, t, f in edges if t == to and f in live]
            if into:
                live.add(to)
                kept.extend(into)
        self.edges = kept
        self.ops = nn.ModuleList(build_op(op, c, 2 if reduction and f < 2 else 1, True) for op, _, f in kept)
        self.nodes = sorted(live - {0, 1})
        self.concat = [n for n in (concat if concat is not None else self.nodes) if n in live]
        if not self.concat:
            raise ValueError(f"cell {list(edges)} has no node reachable from its inputs")
        self.multiplier = len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = {0: self.preprocess0(s0), 1: self.preprocess1(s1)}
        drop = self.training and drop_prob > 0
        for node in self.nodes:
            total = None
            for (_, to, frm), op in zip(self.edges, self.ops):
                if to != node:
                    continue
                h = op(states[frm])
                if drop and self.drop_path_mode == "op" and not is_identity(op):
                    h = drop_path(h, drop_prob)
                total = h if total is None else total + h
            if drop and self.drop_path_mode == "node":
                total = drop_path(total, drop_prob)
            states[node] = total
        return torch.cat([states[n] for n in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS auxiliary classifier (8x8 CIFAR maps: pool stride 3; 14x14 ImageNet maps: stride 2).

    ``final_bn`` (the BatchNorm after the 768-channel conv): ``None`` follows quark0/darts, which keeps it for CIFAR
    and comments it out for ImageNet "for consistency with the experiments in the paper".
    """

    def __init__(self, c: int, num_classes: int, imagenet: bool = False, final_bn: bool | None = None) -> None:
        super().__init__()
        final_bn = not imagenet if final_bn is None else final_bn
        self.features = nn.Sequential(
            nn.ReLU(inplace=False), nn.AvgPool2d(5, stride=2 if imagenet else 3, padding=0, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False), *([nn.BatchNorm2d(768)] if final_bn else []),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),  # identity at the design resolution, lets small inputs through
        )
        self.classifier = nn.Linear(768, num_classes)
        self.min_size = 5 + (2 if imagenet else 3)  # smallest map the 5x5 pool + 2x2 conv accept

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < self.min_size:  # maps smaller than the design (tiny inputs): upsample first
            x = nn.functional.interpolate(x, size=(self.min_size, self.min_size), mode="nearest")
        return self.classifier(self.features(x).flatten(1))


def layer_plan(genotype: AnyGenotype, layers: int, reference_layout: bool = False) -> tuple[list[list[Edge]], list[int], str]:
    """Per-layer cells, strided layers and drop-path mode for a genotype (D-DARTS genes may be deepened)."""
    if isinstance(genotype, CellGenotype):
        from zoo.nas.search_net import default_reductions

        reds = default_reductions(layers)
        return [genotype.edges(i in reds) for i in range(layers)], reds, "op"
    if isinstance(genotype, NestedGenotype):
        from zoo.nas.ddarts.deepen import deepen_layout

        layout, reds = deepen_layout(genotype, layers, reference_layout)
        return [genotype.genes[g] for g in layout], reds, "node"
    raise ValueError(f"{type(genotype).__name__} does not describe conv cells")


class DartsNetwork(ClassifierVerbs, nn.Module):
    """DARTS evaluation network (Liu et al., 2019) for CIFAR (3x3 stem) or ImageNet (two stride-2 stems).

    ``genotype`` is a genotype, its dict, a published name or a JSON path. ``forward`` returns logits;
    ``forward_with_aux`` also returns the auxiliary logits (training only). ``aux_final_bn=None``: the auxiliary
    head's last BatchNorm as in each reference (none on DARTS ImageNet).
    """

    def __init__(self, genotype: AnyGenotype | dict | str = "DARTS_V2", C: int = 36, num_classes: int = 10,
                 layers: int = 20, auxiliary: bool = False, drop_path_prob: float = 0.0, in_chans: int = 3,
                 stem: Literal["cifar", "imagenet"] = "cifar", reference_layout: bool = False,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 aux_final_bn: bool | None = None) -> None:
        super().__init__()
        self.genotype = resolve_genotype(genotype)
        self.num_classes, self.drop_path_prob = num_classes, drop_path_prob
        mean = mean or (IMAGENET_MEAN if stem == "imagenet" else CIFAR_MEAN)
        std = std or (IMAGENET_STD if stem == "imagenet" else CIFAR_STD)
        self.register_buffer("mean", torch.tensor(list(mean)[:in_chans]).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std)[:in_chans]).view(1, -1, 1, 1), persistent=False)
        cells, self.reductions, mode = layer_plan(self.genotype, layers, reference_layout)
        if stem == "cifar":
            self.stem = nn.Sequential(nn.Conv2d(in_chans, 3 * C, 3, padding=1, bias=False), nn.BatchNorm2d(3 * C))
            c_pp = c_p = 3 * C
            reduction_prev = False
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_chans, C // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C // 2),
                nn.ReLU(inplace=True), nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(C))
            self.stem1 = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
                                       nn.BatchNorm2d(C))
            c_pp = c_p = C
            reduction_prev = True
        concat = None if isinstance(self.genotype, NestedGenotype) else self.genotype.normal_concat
        self.cells = nn.ModuleList()
        c_curr, self.aux_index, c_aux = C, self.reductions[-1], 0
        for i, edges in enumerate(cells):
            reduction = i in self.reductions
            c_curr = c_curr * 2 if reduction else c_curr
            cc = None if concat is None else (self.genotype.reduce_concat if reduction else concat)
            cell = DiscreteCell(edges, c_pp, c_p, c_curr, reduction, reduction_prev, mode, cc)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.multiplier * c_curr
            if i == self.aux_index:
                c_aux = c_p
        if aux_final_bn is None:  # quark0/darts drops it on ImageNet; aheuillet/D-DARTS model.py keeps it everywhere
            aux_final_bn = stem != "imagenet" or isinstance(self.genotype, NestedGenotype)
        self.auxiliary_head = AuxiliaryHead(c_aux, num_classes, stem == "imagenet", aux_final_bn) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.num_features = c_p
        self.head = nn.Linear(c_p, num_classes) if num_classes else nn.Identity()

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = (x - self.mean) / self.std
        s0 = self.stem(x)
        s1 = self.stem1(s0) if hasattr(self, "stem1") else s0
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        return s1, aux

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._features(x)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pooling(x).flatten(1)
        return x if pre_logits else self.head(x)

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        feats, aux = self._features(x)
        return self.forward_head(feats), aux
