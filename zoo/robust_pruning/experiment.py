"""The spec's small-scale faithful check of MRS (Bai et al. 2024) on digits, in plain torch loops.

PGD-AT dense CNN -> MRS on a PGD-10 calibration set -> uniform vs MRS ratios at equal parameter count,
L1 vs random criterion -> PGD-AT (or natural) fine-tuning -> clean / PGD-20 accuracy. Run it as
``python -m zoo.robust_pruning.experiment`` to print the table written in docs/robust_pruning.md.
"""
from __future__ import annotations

import copy
import json
import statistics
import sys
from dataclasses import dataclass, field

import torch

from zoo.core.attacks import eval_mode, pgd
from zoo.core.structured_pruning import (
    ParamCounter, channel_importance, find_units, prune_channels, pruning_indices, uniform_ratios,
)
from zoo.robust_pruning.allocation import mrs_ratios
from zoo.robust_pruning.losses import robust_loss
from zoo.robust_pruning.mrs import adversarial_calibration_set, module_robust_sensitivity
from zoo.robust_pruning.net import DigitsCNN


@dataclass
class CheckConfig:
    """Settings of spec section 8 (defaults = the spec's pilot)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    sparsities: tuple[float, ...] = (0.5, 0.7)
    bounds: dict = field(default_factory=lambda: {0.5: (0.5, 0.9), 0.7: (0.3, 0.8)})  # sparsity -> (delta, p_max)
    eps: float = 0.1
    train_alpha: float = 0.025
    train_steps: int = 5
    dense_epochs: int = 12
    dense_lr: float = 0.05
    ft_epochs: int = 3
    ft_lr: float = 0.01
    batch_size: int = 64
    calib: int = 512
    ascent_steps: int = 10
    radius: float = 0.1
    eval_alpha: float = 0.01
    eval_steps: int = 20
    probe_ratio: float = 0.5
    measure: str = "loss"  # MRS reading: "loss" (default) or "acc_drop"
    ascent_lr: float = 1.0
    ascent: str = "sgd"  # or "normalized"


def train(net, x, y, epochs: int, lr: float, kind: str, cfg: CheckConfig, seed: int) -> None:
    """SGD (momentum 0.9, wd 5e-4, cosine per epoch) with the given robust loss."""
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            loss, _ = robust_loss(net, x[idx], y[idx], kind, cfg.eps, cfg.train_alpha, cfg.train_steps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    net.eval()


def evaluate(net, x, y, cfg: CheckConfig, seed: int = 0) -> tuple[float, float]:
    """Clean and PGD-20 accuracy in percent."""
    gen = torch.Generator().manual_seed(seed)
    x_adv = pgd(net, x, y, cfg.eps, cfg.eval_alpha, cfg.eval_steps, generator=gen)
    with torch.no_grad(), eval_mode(net):
        clean = (net(x).argmax(1) == y).float().mean().item()
        robust = (net(x_adv).argmax(1) == y).float().mean().item()
    return 100 * clean, 100 * robust


def pruned_copy(net, example, ratios, criterion: str, seed: int):
    out = copy.deepcopy(net)
    units = find_units(out, example)
    imp = channel_importance(out, units, criterion, seed=seed)
    prune_channels(out, example, pruning_indices(units, imp, ratios))
    return out.eval()


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r
    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((p - ma) * (q - mb) for p, q in zip(ra, rb))
    var = (sum((p - ma) ** 2 for p in ra) * sum((q - mb) ** 2 for q in rb)) ** 0.5
    return cov / var if var else 0.0


def run_seed(seed: int, cfg: CheckConfig) -> dict:
    """One seed of the check: every arm's (clean, PGD) before and after fine-tuning, plus MRS vs harm."""
    from datamodules.digits import load_digits_tensors, stratified_split  # the embedded dataset

    torch.manual_seed(seed)
    x, y = load_digits_tensors()
    tr, _, te = stratified_split(y, (0.75, 0.0, 0.25), seed)
    xtr, ytr, xte, yte = x[tr], y[tr], x[te], y[te]
    net = DigitsCNN()
    train(net, xtr, ytr, cfg.dense_epochs, cfg.dense_lr, "pgd_at", cfg, seed)
    res: dict = {"dense": evaluate(net, xte, yte, cfg, seed)}
    example = xtr[:1]
    units = find_units(net, example)
    counter = ParamCounter(net, example, units)
    g = torch.Generator().manual_seed(seed)
    cal = torch.randperm(len(ytr), generator=g)[:cfg.calib]
    x_adv = adversarial_calibration_set(net, xtr[cal], ytr[cal], cfg.eps, cfg.train_alpha, 10, seed=seed)
    mrs = module_robust_sensitivity(net, x_adv, ytr[cal], [u.name for u in units], cfg.radius, cfg.ascent_steps,
                                    lr=cfg.ascent_lr, measure=cfg.measure, ascent=cfg.ascent)
    res["mrs"] = mrs
    harm = []  # isolated pruning of one layer at the probe ratio: PGD accuracy lost
    for u in units:
        probe = pruned_copy(net, example, {u.name: cfg.probe_ratio}, "l1", seed)
        harm.append(res["dense"][1] - evaluate(probe, xte, yte, cfg, seed)[1])
    res["harm"] = dict(zip([u.name for u in units], harm))
    res["spearman"] = spearman([mrs[u.name] for u in units], harm)
    for s in cfg.sparsities:
        delta, p_max = cfg.bounds[s]
        plans = {"uniform": uniform_ratios(counter, s), "mrs": mrs_ratios(counter, mrs, s, delta=delta, p_max=p_max)}
        for alloc, ratios in plans.items():
            for crit in ("l1", "random"):
                key = f"{int(s * 100)}/{alloc}/{crit}"
                pruned = pruned_copy(net, example, ratios, crit, seed)
                entry = {"params": sum(p.numel() for p in pruned.parameters()), "noft": evaluate(pruned, xte, yte, cfg, seed)}
                arms = ["pgd_at"] + (["natural"] if crit == "l1" else [])
                for kind in arms:
                    ft = copy.deepcopy(pruned)
                    train(ft, xtr, ytr, cfg.ft_epochs, cfg.ft_lr, kind, cfg, seed)
                    entry["ft_" + kind] = evaluate(ft, xte, yte, cfg, seed)
                res[key] = entry
    return res


def summarise(runs: list[dict], cfg: CheckConfig) -> dict:
    """Means over seeds of every arm (clean / PGD, before and after fine-tuning)."""
    mean = lambda v: statistics.fmean(v)  # noqa: E731
    out = {"dense": [mean([r["dense"][i] for r in runs]) for i in (0, 1)],
           "spearman": mean([r["spearman"] for r in runs]), "rows": {}}
    for key in [k for k in runs[0] if k.count("/") == 2]:
        row = {"params": mean([r[key]["params"] for r in runs])}
        for arm in ("noft", "ft_pgd_at", "ft_natural"):
            if arm in runs[0][key]:
                row[arm] = [mean([r[key][arm][i] for r in runs]) for i in (0, 1)]
        out["rows"][key] = row
    return out


def table(summary: dict) -> str:
    """Markdown table of the summary (percent)."""
    lines = ["| sparsity / allocation / criterion | params | clean no-FT | PGD no-FT | clean adv-FT | PGD adv-FT | PGD nat-FT |",
             "|---|---|---|---|---|---|---|"]
    for key, r in summary["rows"].items():
        nat = f"{r['ft_natural'][1]:.1f}" if "ft_natural" in r else "-"
        lines.append(f"| {key} | {r['params']:.0f} | {r['noft'][0]:.1f} | {r['noft'][1]:.1f} | "
                     f"{r['ft_pgd_at'][0]:.1f} | {r['ft_pgd_at'][1]:.1f} | {nat} |")
    d = summary["dense"]
    lines.append(f"\nDense: clean {d[0]:.1f}, PGD-20 {d[1]:.1f}; Spearman(MRS, isolated-pruning PGD drop) = "
                 f"{summary['spearman']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    torch.set_num_threads(1)
    extra = dict(a.split("=", 1) for a in (argv or [])[2:])  # e.g. measure=acc_drop ascent_lr=10 sparsities=0.7
    cfg = CheckConfig(seeds=tuple(int(s) for s in argv[1].split(",")) if argv and len(argv) > 1 else (0, 1, 2))
    for k, v in extra.items():
        setattr(cfg, k, tuple(float(x) for x in v.split(",")) if k == "sparsities" else type(getattr(cfg, k))(v))
    runs = [run_seed(s, cfg) for s in cfg.seeds]
    summary = summarise(runs, cfg)
    print(table(summary))
    if argv and argv[0]:
        with open(argv[0], "w") as fh:
            json.dump({"runs": runs, "summary": summary}, fh, indent=1, default=str)


if __name__ == "__main__":
    main(sys.argv[1:])
