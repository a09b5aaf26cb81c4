"""The kernel-function study on digits (spec section 8) and the results table of any grid.

A plain torch loop (no Lightning) keeps the 5-seed grid at about a minute of one CPU thread:
stratified 70/30 split per seed, Adam 1e-3, batch 64; MLP head study 40 epochs, CNN conv/pool
study 15 epochs. ``python -m zoo.kdl.study --out results.md`` prints and writes the table.
"""
from __future__ import annotations

import argparse
import math
from collections import defaultdict
from typing import Any, Iterable

import torch
import torch.nn.functional as F

from zoo.kdl.nets import KernelNet

# name -> (KernelNet kwargs, epochs); the spec's section 8 grid
DIGITS_VARIANTS: dict[str, tuple[dict[str, Any], int]] = {
    "MLP, linear FC": ({"arch": "digits_mlp", "fc_kernel": "linear"}, 40),
    "MLP, KDL poly d=2": ({"arch": "digits_mlp", "fc_kernel": "poly", "degree": 2}, 40),
    "MLP, KDL poly d=3": ({"arch": "digits_mlp", "fc_kernel": "poly", "degree": 3}, 40),
    "MLP, KDL gauss gamma=1/64": ({"arch": "digits_mlp", "fc_kernel": "gauss", "gamma_init": 1 / 64}, 40),
    "MLP, KDL gauss gamma=0.5": ({"arch": "digits_mlp", "fc_kernel": "gauss", "gamma_init": 0.5}, 40),
    "MLP, KDL sigmoid": ({"arch": "digits_mlp", "fc_kernel": "sigmoid"}, 40),
    "CNN, linear conv + max pool": ({"arch": "digits_cnn"}, 15),
    "CNN, poly d=2 conv": ({"arch": "digits_cnn", "conv_kernel": "poly"}, 15),
    "CNN, gauss conv gamma=1/(C k^2)": ({"arch": "digits_cnn", "conv_kernel": "gauss"}, 15),
    "CNN, avg pool": ({"arch": "digits_cnn", "pool_type": "avg"}, 15),
    "CNN, kernel pool poly d=2": ({"arch": "digits_cnn", "pool_type": "kernel_poly"}, 15),
    "CNN, kernel pool linear": ({"arch": "digits_cnn", "pool_type": "kernel_linear"}, 15),
}


def _accuracy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(-1) == y).float().mean())


def train_eval(net_kwargs: dict[str, Any], epochs: int, seed: int, lr: float = 1e-3, batch_size: int = 64,
               test_fraction: float = 0.3) -> dict[str, float]:
    """Train one KernelNet on a seeded stratified digits split; train/test accuracy and a NaN flag."""
    from datamodules.digits import load_digits_tensors, stratified_split

    x, y = load_digits_tensors()
    train_idx, _, test_idx = stratified_split(y, (1.0 - test_fraction, 0.0, test_fraction), seed)
    torch.manual_seed(seed)
    net = KernelNet(num_classes=10, **net_kwargs)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    finite = True
    for _ in range(epochs):
        net.train()
        perm = train_idx[torch.randperm(len(train_idx), generator=gen)]
        for start in range(0, len(perm), batch_size):
            idx = perm[start:start + batch_size]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            finite &= bool(torch.isfinite(loss))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    finite &= all(bool(torch.isfinite(p).all()) for p in net.parameters())
    return {"train_acc": _accuracy(net, x[train_idx], y[train_idx]),
            "test_acc": _accuracy(net, x[test_idx], y[test_idx]), "finite": float(finite)}


def digits_grid(variants: Iterable[str] | None = None, seeds: Iterable[int] = range(5)) -> list[dict[str, Any]]:
    """One row per (variant, seed) of the section 8 digits study."""
    rows = []
    for name in variants or DIGITS_VARIANTS:
        kwargs, epochs = DIGITS_VARIANTS[name]
        for seed in seeds:
            rows.append({"dataset": "digits", "variant": name, "seed": seed, **train_eval(kwargs, epochs, seed)})
    return rows


def summarise(rows: list[dict[str, Any]], metrics: tuple[str, ...] = ("test_acc", "train_acc")) -> list[dict]:
    """Mean and (sample) std over seeds per (dataset, variant), in first-seen order."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["dataset"], row["variant"])].append(row)
    out = []
    for (dataset, variant), group in groups.items():
        entry: dict[str, Any] = {"dataset": dataset, "variant": variant, "seeds": len(group)}
        for m in metrics:
            values = [float(r[m]) for r in group if m in r and r[m] is not None]
            if not values:
                continue
            mean = sum(values) / len(values)
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
            entry[m], entry[f"{m}_std"] = mean, std
        out.append(entry)
    return out


def format_table(summary: list[dict], metrics: tuple[str, ...] = ("test_acc", "train_acc")) -> str:
    """Markdown table: dataset | variant | seeds | metric mean +- std ..."""
    lines = ["| dataset | variant | seeds | " + " | ".join(metrics) + " |",
             "|---|---|---|" + "---|" * len(metrics)]
    for e in summary:
        cells = [f"{e[m]:.3f} ± {e[m + '_std']:.3f}" if m in e else "n/a" for m in metrics]
        lines.append(f"| {e['dataset']} | {e['variant']} | {e['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--variants", nargs="*", default=None, help=f"subset of: {list(DIGITS_VARIANTS)}")
    parser.add_argument("--out", default=None, help="write the markdown table here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    table = format_table(summarise(digits_grid(args.variants, args.seeds)))
    print(table)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(table + "\n")


if __name__ == "__main__":
    main()
