"""Structured (channel / filter / neuron) pruning engine on torch-pruning's dependency graph (DepGraph).

Shared by the zoo: finds prunable units (a Conv2d/Linear output dimension plus everything coupled to
it), scores channels with a pluggable criterion, counts parameters/MACs a ratio plan leaves (exactly,
without pruning) and removes channels physically. ``record_structure``/``apply_structure`` save and
rebuild a pruned architecture as plain ints, so checkpoints and weights files reload it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Literal

import torch
import torch.nn.functional as F
from torch import nn

Criterion = Literal["random", "l1", "l2", "bn_scale", "taylor"]
CRITERIA: tuple[str, ...] = ("random", "l1", "l2", "bn_scale", "taylor")


def _tp():
    try:
        import torch_pruning as tp
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("structured pruning needs 'torch-pruning' (pip install torch-pruning==1.6.1)") from err
    return tp


@dataclass
class PrunableUnit:
    """Output channels of one or more coupled layers (``members``) that are pruned together."""

    name: str
    members: list[str]
    channels: int
    deps: list[tuple[str, str, int]] = field(default_factory=list)  # (module, "out"|"in"|"bn", multiplicity)
    bns: list[str] = field(default_factory=list)


def _layers(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def default_excluded(model: nn.Module) -> list[str]:
    """The first conv/linear layer and the classifier (last linear): never pruned (spec, Bai et al.)."""
    names = list(_layers(model))
    if not names:
        return []
    head = getattr(model, "head", None)
    last = next((n for n, m in model.named_modules() if m is head), names[-1]) if head is not None else names[-1]
    return sorted({names[0], last})


def build_graph(model: nn.Module, example_inputs: torch.Tensor):
    """Trace ``model`` into a torch-pruning DependencyGraph (eval mode, grads enabled)."""
    tp = _tp()
    was = model.training
    model.eval()
    with torch.enable_grad():
        dg = tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs, verbose=False)
    model.train(was)
    return dg


def _out_fn(module: nn.Module):
    tp = _tp()
    return tp.prune_conv_out_channels if isinstance(module, nn.Conv2d) else tp.prune_linear_out_channels


def find_units(model: nn.Module, example_inputs: torch.Tensor, exclude: Iterable[str] | None = None,
               coupled: bool = False, dg=None) -> list[PrunableUnit]:
    """Prunable units in module order; residual-coupled groups only if ``coupled`` (else block-internal only)."""
    dg = dg or build_graph(model, example_inputs)
    excluded = set(default_excluded(model) if exclude is None else exclude)
    names = {m: n for n, m in model.named_modules()}
    units, seen = [], set()
    for name, module in _layers(model).items():
        if name in excluded or module not in dg.module2node:
            continue
        group = dg.get_pruning_group(module, _out_fn(module), idxs=[0])
        members, deps, bns = [], [], []
        for dep, idxs in group:
            target = dep.target.module
            tname = names.get(target)
            if tname is None:
                continue
            if isinstance(target, nn.modules.batchnorm._BatchNorm):
                deps.append((tname, "bn", len(idxs)))
                bns.append(tname)
            elif isinstance(target, (nn.Conv2d, nn.Linear)):
                kind = "out" if dg.is_out_channel_pruning_fn(dep.handler) else "in"
                deps.append((tname, kind, len(idxs)))
                if kind == "out":
                    members.append(tname)
        key = frozenset(members)
        if key in seen:
            continue
        seen.add(key)
        if excluded & key or (len(members) > 1 and not coupled):
            continue
        members.sort(key=list(names.values()).index)
        units.append(PrunableUnit(members[0], members, module.weight.shape[0], deps, bns))
    return units


class ParamCounter:
    """Exact parameter and MAC counts of the network a ratio plan would leave, without pruning it."""

    def __init__(self, model: nn.Module, example_inputs: torch.Tensor, units: list[PrunableUnit]) -> None:
        self.units = units
        self.total = sum(p.numel() for p in model.parameters())
        self.shapes: dict[str, list[int]] = {}
        self.hw: dict[str, int] = {}
        hooks = []
        mods = dict(model.named_modules())
        for n, m in mods.items():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                self.shapes[n] = [m.weight.shape[0], m.weight.shape[1]]
                hooks.append(m.register_forward_hook(
                    lambda mod, i, o, n=n: self.hw.__setitem__(n, o[0].numel() // o.shape[1] if o.dim() > 2 else 1)))
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                self.shapes[n] = [m.num_features]
        with torch.no_grad():
            was = model.training
            model.eval()
            model(example_inputs[:1])
            model.train(was)
        for h in hooks:
            h.remove()
        self.mods = {n: mods[n] for n in self.shapes}

    @staticmethod
    def _module_params(m: nn.Module, shape: list[int]) -> int:
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            return 2 * shape[0] if m.affine else 0
        k = m.weight[0, 0].numel()
        return shape[0] * shape[1] * k + (shape[0] if m.bias is not None else 0)

    def _module_macs(self, n: str, shape: list[int]) -> int:
        m = self.mods[n]
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            return 0
        return shape[0] * shape[1] * m.weight[0, 0].numel() * self.hw.get(n, 0)

    def removed_channels(self, ratios: dict[str, float], min_channels: int = 1) -> dict[str, int]:
        """Channels each unit loses: ``round(p * C)``, keeping at least ``min_channels``."""
        out = {}
        for u in self.units:
            p = float(ratios.get(u.name, 0.0))
            out[u.name] = max(0, min(int(round(p * u.channels)), u.channels - min_channels))
        return out

    def shapes_after(self, ratios: dict[str, float], min_channels: int = 1) -> dict[str, list[int]]:
        shapes = {n: list(s) for n, s in self.shapes.items()}
        removed = self.removed_channels(ratios, min_channels)
        for u in self.units:
            for mod, kind, mult in u.deps:
                dim = 1 if kind == "in" else 0
                shapes[mod][dim] -= removed[u.name] * mult
        return shapes

    def count(self, ratios: dict[str, float], metric: Literal["params", "macs"] = "params",
              min_channels: int = 1) -> int:
        """Parameters (all of the net) or conv/linear MACs (per image) after pruning with ``ratios``."""
        shapes = self.shapes_after(ratios, min_channels)
        if metric == "macs":
            return sum(self._module_macs(n, s) for n, s in shapes.items())
        delta = sum(self._module_params(self.mods[n], self.shapes[n]) - self._module_params(self.mods[n], s)
                    for n, s in shapes.items())
        return self.total - delta


# ---- importance criteria ----------------------------------------------------------------
def _taylor_scores(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
                   attack: Callable | None) -> dict[str, torch.Tensor]:
    """First-order Taylor |sum w * dL/dw| per output channel (Molchanov et al. 2019), summed over batches."""
    layers = _layers(model)
    scores = {n: torch.zeros(m.weight.shape[0], device=m.weight.device) for n, m in layers.items()}
    was = model.training
    model.eval()
    for x, y in batches:
        if attack is not None:
            x = attack(model, x, y)
        model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            F.cross_entropy(model(x), y).backward()
        for n, m in layers.items():
            if m.weight.grad is not None:
                scores[n] += (m.weight * m.weight.grad).detach().flatten(1).sum(1).abs()
    model.zero_grad(set_to_none=True)
    model.train(was)
    return scores


def channel_importance(model: nn.Module, units: list[PrunableUnit], criterion: Criterion = "l1", seed: int = 0,
                       batches: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
                       attack: Callable | None = None) -> dict[str, torch.Tensor]:
    """Importance of every output channel of each unit (summed over coupled members); higher = keep."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown pruning criterion {criterion!r}; expected one of {CRITERIA}")
    mods = dict(model.named_modules())
    gen = torch.Generator().manual_seed(seed)
    taylor = None
    if criterion == "taylor":
        if not batches:
            raise ValueError("the 'taylor' criterion needs calibration batches (clean or adversarial)")
        taylor = _taylor_scores(model, batches, attack)
    out = {}
    for u in units:
        score = torch.zeros(u.channels)
        if criterion == "random":
            score = torch.rand(u.channels, generator=gen)
        elif criterion == "bn_scale" and u.bns:  # network slimming; units without BN fall back to L1
            for b in u.bns:
                score += mods[b].weight.detach().abs().cpu()
        else:
            for n in u.members:
                w = mods[n].weight.detach().flatten(1).cpu()
                if criterion in ("l1", "bn_scale"):
                    score += w.abs().sum(1)
                elif criterion == "l2":
                    score += w.norm(dim=1)
                else:
                    score += taylor[n].cpu()
        out[u.name] = score
    return out


def pruning_indices(units: list[PrunableUnit], importance: dict[str, torch.Tensor], ratios: dict[str, float],
                    min_channels: int = 1) -> dict[str, list[int]]:
    """Channels to remove per unit: the ``round(p * C)`` least important (ties broken by index)."""
    out = {}
    for u in units:
        n = max(0, min(int(round(float(ratios.get(u.name, 0.0)) * u.channels)), u.channels - min_channels))
        order = torch.argsort(importance[u.name], stable=True)
        out[u.name] = sorted(order[:n].tolist())
    return out


def prune_channels(model: nn.Module, example_inputs: torch.Tensor, indices: dict[str, list[int]], dg=None) -> None:
    """Physically remove ``indices`` (unit name -> output channels) and everything coupled to them."""
    dg = dg or build_graph(model, example_inputs)
    mods = dict(model.named_modules())
    for name, idxs in indices.items():
        if idxs:
            module = mods[name]
            dg.get_pruning_group(module, _out_fn(module), idxs=list(idxs)).prune()


# ---- saving and rebuilding a pruned architecture ------------------------------------------
def record_structure(model: nn.Module) -> dict[str, list[int]]:
    """Shapes of every Conv2d/Linear ([out, in]) and BatchNorm ([features]) as plain ints."""
    out = {}
    for n, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            out[n] = [int(m.weight.shape[0]), int(m.weight.shape[1])]
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            out[n] = [int(m.num_features)]
    return out


def _resized(m: nn.Module, shape: list[int]) -> nn.Module:
    if isinstance(m, nn.Conv2d):
        if m.groups != 1:
            raise ValueError("apply_structure supports groups=1 convolutions only")
        return nn.Conv2d(shape[1], shape[0], m.kernel_size, m.stride, m.padding, m.dilation, 1,
                         m.bias is not None, m.padding_mode)
    if isinstance(m, nn.Linear):
        return nn.Linear(shape[1], shape[0], m.bias is not None)
    return type(m)(shape[0], m.eps, m.momentum, m.affine, m.track_running_stats)


def apply_structure(model: nn.Module, structure: dict[str, list[int]]) -> nn.Module:
    """Resize layers of a freshly built ``model`` to a recorded pruned ``structure`` (in place)."""
    mods = dict(model.named_modules())
    for name, shape in structure.items():
        if name not in mods:
            raise ValueError(f"pruned structure names layer {name!r}, which this network does not have")
        m = mods[name]
        current = record_structure(m).get("", None)
        if current == list(shape):
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = mods[parent_name] if parent_name else model
        setattr(parent, attr, _resized(m, list(shape)))
    return model


def is_pruned(model: nn.Module, structure: dict[str, list[int]] | None) -> bool:
    """Whether ``model`` already has ``structure``."""
    return structure is not None and all(record_structure(model).get(k) == list(v) for k, v in structure.items())


# ---- budgets -------------------------------------------------------------------------------
def _bisect(f, lo: float, hi: float, target: float, iters: int = 60) -> float:
    """Smallest x in [lo, hi] with f(x) <= target, f non-increasing."""
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if f(mid) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def target_count(counter: ParamCounter, sparsity: float, budget: Literal["params", "macs"] = "params") -> float:
    """The number of parameters (or MACs) allowed after removing fraction ``sparsity`` of the dense net."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    return (1.0 - sparsity) * counter.count({}, budget)


def uniform_ratio(counter: ParamCounter, sparsity: float, budget: Literal["params", "macs"] = "params", min_channels: int = 1,
                  p_max: float = 0.99) -> float:
    """The channel ratio p_u that, used in every prunable unit, removes ``sparsity`` of the budget metric."""
    target = target_count(counter, sparsity, budget)
    units = [u.name for u in counter.units]
    f = lambda p: counter.count({u: p for u in units}, budget, min_channels)  # noqa: E731
    if f(p_max) > target:
        raise ValueError(
            f"{sparsity:.0%} {budget} sparsity is out of reach by pruning only the prunable units "
            f"(at ratio {p_max} the network keeps {f(p_max)} of {counter.count({}, budget)}); lower the target"
        )
    return _bisect(f, 0.0, p_max, target)


def uniform_ratios(counter: ParamCounter, sparsity: float, budget: Literal["params", "macs"] = "params",
                   min_channels: int = 1, refine: bool = True) -> dict[str, float]:
    """Uniform allocation: every prunable unit gets p_u (then +-1 channel to meet the budget)."""
    p = uniform_ratio(counter, sparsity, budget, min_channels)
    ratios = {u.name: p for u in counter.units}
    if not refine:
        return ratios
    return refine_to_budget(counter, ratios, target_count(counter, sparsity, budget), budget, min_channels,
                            {u.name: (p, p) for u in counter.units})


def refine_to_budget(counter: ParamCounter, ratios: dict[str, float], target: float,
                     budget: Literal["params", "macs"] = "params", min_channels: int = 1,
                     bounds: dict[str, tuple[float, float]] | None = None, max_moves: int = 10_000) -> dict[str, float]:
    """Greedy +-1 channel moves (each unit within its ratio bounds, rounded outwards) that bring the count
    closest to ``target``; channel granularity otherwise leaves the budget off by up to one channel's cost."""
    removed = counter.removed_channels(ratios, min_channels)
    chans = {u.name: u.channels for u in counter.units}
    limits = {}
    for n, c in chans.items():
        lo, hi = (bounds or {}).get(n, (0.0, 1.0))
        limits[n] = (max(0, math.floor(lo * c)), min(c - min_channels, math.ceil(hi * c)))
    as_ratios = lambda r: {n: r[n] / chans[n] for n in r}  # noqa: E731
    err = abs(counter.count(as_ratios(removed), budget, min_channels) - target)
    for _ in range(max_moves):
        best = None
        for n in removed:
            for step in (1, -1):
                k = removed[n] + step
                if not limits[n][0] <= k <= limits[n][1]:
                    continue
                trial = dict(removed, **{n: k})
                e = abs(counter.count(as_ratios(trial), budget, min_channels) - target)
                if e < err and (best is None or e < best[0]):
                    best = (e, trial)
        if best is None:
            break
        err, removed = best
    return as_ratios(removed)


class RatioPolicy:
    """How much each unit is pruned: subclasses map (net, counter, sparsity) to ``{unit name: ratio}``.

    ``num_samples`` training samples (images in [0, 1], labels) are passed as ``data`` when > 0;
    ``scores`` holds per-layer scores of the last call (for logging).
    """

    num_samples: int = 0
    scores: dict[str, float] | None = None

    def ratios(self, net: nn.Module, counter: ParamCounter, sparsity: float, budget: str = "params",
               min_channels: int = 1, data: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, float]:
        raise NotImplementedError
