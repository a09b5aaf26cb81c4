"""Per-layer pruning ratios from MRS (Bai et al. 2024): sensitive layers are pruned less.

[RECONSTRUCTED] bounded inverse-MRS rule of the spec (section 3.3):
p_l = clip(z * p_u * (g / m_l)^alpha, p_u (1 - delta), min(p_max, p_u (1 + delta))), g the geometric mean
of the MRS, p_u the uniform ratio meeting the budget, z found by bisection so the pruned network hits the
parameter (or MAC) budget; then +-1 channel moves inside the bounds bring the count closest to the budget. Coupled units take the minimum member ratio.
"""
from __future__ import annotations

import math
from typing import Literal

from zoo.core.structured_pruning import (
    ParamCounter, _bisect, refine_to_budget, target_count, uniform_ratio, uniform_ratios,
)

__all__ = ["mrs_ratios", "uniform_ratio", "uniform_ratios", "target_count", "achieved_sparsity"]

Budget = Literal["params", "macs"]


def mrs_ratios(counter: ParamCounter, mrs: dict[str, float], sparsity: float, budget: Budget = "params",
               alpha: float = 1.0, delta: float = 0.3, p_max: float = 0.8, min_channels: int = 1,
               eps: float = 1e-12, refine: bool = True) -> dict[str, float]:
    """Bounded inverse-MRS ratios meeting the budget (see module docstring); keys are unit names."""
    p_u = uniform_ratio(counter, sparsity, budget, min_channels)
    member_score = {}
    for u in counter.units:
        missing = [m for m in u.members if m not in mrs]
        if missing:
            raise ValueError(f"MRS scores missing for prunable layers {missing}")
        member_score.update({m: max(float(mrs[m]), eps) for m in u.members})
    g = math.exp(sum(math.log(v) for v in member_score.values()) / len(member_score))
    lo, hi = p_u * (1 - delta), min(p_max, p_u * (1 + delta))
    if hi < lo:
        raise ValueError(f"p_max={p_max} is below the lower bound p_u (1 - delta) = {lo:.3f}; raise p_max")

    def ratios(z: float) -> dict[str, float]:
        out = {}
        for u in counter.units:
            member = [min(hi, max(lo, z * p_u * (g / member_score[m]) ** alpha)) for m in u.members]
            out[u.name] = min(member)  # coupled channels: the most conservative member decides
        return out

    target = target_count(counter, sparsity, budget)
    f = lambda z: counter.count(ratios(z), budget, min_channels)  # noqa: E731
    z_hi = 1.0
    while f(z_hi) > target and z_hi < 1e6:
        z_hi *= 2
    if f(z_hi) > target:
        raise ValueError(f"MRS allocation cannot reach {sparsity:.0%} {budget} sparsity within bounds "
                         f"[{lo:.3f}, {hi:.3f}]; raise delta or p_max")
    coarse = ratios(_bisect(f, 0.0, z_hi, target))
    if not refine:
        return coarse
    bounds = {u.name: (lo, hi) for u in counter.units}
    return refine_to_budget(counter, coarse, target, budget, min_channels, bounds)


def achieved_sparsity(counter: ParamCounter, ratios: dict[str, float], budget: Budget = "params",
                      min_channels: int = 1) -> float:
    """Fraction of the dense budget metric removed by ``ratios``."""
    return 1.0 - counter.count(ratios, budget, min_channels) / counter.count({}, budget)
