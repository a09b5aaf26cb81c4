"""CPU latency of ResNet-18 (CIFAR) physically pruned to 50 % / 70 % of parameters vs the dense network.

Uniform L1 channel pruning of the block-internal channels (torch-pruning DepGraph), as the MRS paper's
pruned models. Prints params, MACs and median latency per batch size, and the dense/pruned speed-up.
Usage: python benchmarks/pruned_latency.py [--threads N] [--batches 1 32] [--arch resnet18|vgg16_bn]
"""
from __future__ import annotations

import argparse
import copy

import torch

from zoo.core.profiling import count_macs, count_params, measure_latency
from zoo.core.structured_pruning import (
    ParamCounter, channel_importance, find_units, prune_channels, pruning_indices, uniform_ratios,
)
from zoo.robust_pruning.module import build_net


def pruned(net: torch.nn.Module, sparsity: float, coupled: bool) -> torch.nn.Module:
    out = copy.deepcopy(net)
    x = torch.rand(1, 3, 32, 32)
    units = find_units(out, x, coupled=coupled)
    ratios = uniform_ratios(ParamCounter(out, x, units), sparsity, min_channels=8)
    prune_channels(out, x, pruning_indices(units, channel_importance(out, units, "l1"), ratios, min_channels=8))
    return out.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--arch", default="resnet18", choices=["resnet18", "vgg16_bn"])
    ap.add_argument("--coupled", action="store_true", help="also prune residual-coupled channel groups")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dense = build_net(args.arch, in_chans=3, input_size=32).eval()
    models = {"dense": dense, "50%": pruned(dense, 0.5, args.coupled), "70%": pruned(dense, 0.7, args.coupled)}
    print(f"{args.arch} CIFAR, CPU, {args.threads} thread(s); latency = median of {args.repeats} runs")
    print("| model | params | MACs | " + " | ".join(f"latency bs={b} (ms) | speed-up bs={b}" for b in args.batches) + " |")
    print("|---|---|---|" + "---|---|" * len(args.batches))
    base = {}
    for name, m in models.items():
        cells = [name, f"{count_params(m) / 1e6:.2f} M", f"{count_macs(m, (1, 3, 32, 32)) / 1e6:.0f} M"]
        for b in args.batches:
            t = measure_latency(m, torch.rand(b, 3, 32, 32), warmup=3, repeats=args.repeats)
            base.setdefault(b, t)
            cells += [f"{1e3 * t:.1f}", f"{base[b] / t:.2f}x"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
