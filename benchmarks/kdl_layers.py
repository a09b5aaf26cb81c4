"""Kernel layers (Mahmoudi et al. 2020/2023) against their linear counterparts: forward and forward+backward
time as ratios.

Single convolutions of VGG-16 shapes (KernelConv2d against nn.Conv2d of the same shape, issue 17's targets:
Gaussian <= 1.3x, polynomial <= 1.1x), and at the papers' sizes: a dense layer 4608 -> 4096 (the first FC of a VGG-16 head at 100x100) and
4096 -> 4096, the first VGG-16 pooling (64 x 100 x 100), and the whole VGG-16 conv stack at 100x100
with every conv (or every pool) kernelized. Each row's ratio is against the linear layer timed in the
same process on the same device.

    python benchmarks/kdl_layers.py                       # CPU, small batches
    python benchmarks/kdl_layers.py --device cuda --batch 64 --amp bf16
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _step(module: nn.Module, x: torch.Tensor, backward: bool, dtype: torch.dtype | None) -> None:
    """One call: ``module(x)`` in eval mode under no_grad, or ``module(x).sum().backward()`` in train mode."""
    module.train(backward)
    with torch.set_grad_enabled(backward), torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
        out = module(x)
    if backward:
        out.float().sum().backward()


def bench_clock(device_type: str):
    """Process CPU time for a one-thread CPU run (a shared machine's other jobs then cost nothing but cache),
    wall time otherwise."""
    return time.process_time if device_type == "cpu" and torch.get_num_threads() == 1 else time.perf_counter


def time_group(modules: list[nn.Module], x: torch.Tensor, warmup: int, repeats: int, amp: str | None
               ) -> list[tuple[float, float]]:
    """(forward, forward+backward) seconds per module: the minimum over ``repeats`` rounds, each round timing
    every module once in turn, so load from other processes on a shared machine hits all rows alike."""
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    clock = bench_clock(x.device.type)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp or "")
    xg = x.detach().requires_grad_(True)
    best = [[float("inf"), float("inf")] for _ in modules]
    for r in range(warmup + repeats):
        for i, module in enumerate(modules):
            for j, backward in enumerate((False, True)):
                start = clock()
                _step(module, xg if backward else x, backward, dtype)
                sync()
                if r >= warmup:
                    best[i][j] = min(best[i][j], clock() - start)
    for module in modules:
        module.zero_grad(set_to_none=True)
    return [(f, b) for f, b in best]


def rows(args) -> list[tuple[str, str, Callable[[], nn.Module], tuple[int, ...]]]:
    """(group, name, module factory, input shape); the first row of each group is its linear baseline."""
    from zoo.kdl.kernels import KernelConv2d, KernelLinear, KernelPool2d
    from zoo.kdl.nets import KernelNet

    b, bc = args.batch, args.conv_batch
    out: list = []
    for cin, cout, size in ((64, 64, 50), (128, 128, 25), (256, 256, 12)):
        group = f"conv {cin}->{cout} 3x3 at {size}x{size}, no bias (batch {bc})"
        out.append((group, "nn.Conv2d", lambda i=cin, o=cout: nn.Conv2d(i, o, 3, padding=1, bias=False),
                    (bc, cin, size, size)))
        for kind in ("linear", "poly", "gauss", "sigmoid", "cauchy"):
            out.append((group, f"KernelConv2d {kind}", lambda i=cin, o=cout, k=kind: KernelConv2d(
                i, o, 3, padding=1, bias=False, kernel=k), (bc, cin, size, size)))
    for n_in in (4608, 4096):
        group = f"FC {n_in}->4096 (batch {b})"
        out.append((group, "nn.Linear", lambda n=n_in: nn.Linear(n, 4096), (b, n_in)))
        for kind in ("linear", "poly", "gauss", "sigmoid", "cauchy"):
            out.append((group, f"KDL {kind}", lambda n=n_in, k=kind: KernelLinear(n, 4096, kernel=k, gamma_init=None),
                        (b, n_in)))
    group = f"pool 64x100x100 (batch {bc})"
    out.append((group, "nn.AvgPool2d", lambda: nn.AvgPool2d(2), (bc, 64, 100, 100)))
    out.append((group, "nn.MaxPool2d", lambda: nn.MaxPool2d(2), (bc, 64, 100, 100)))
    for kind in ("linear", "poly", "gauss"):
        out.append((group, f"KernelPool2d {kind}", lambda k=kind: KernelPool2d(64, 2, kernel=k), (bc, 64, 100, 100)))
    group = f"VGG-16 conv stack 3x100x100 (batch {bc})"
    features = lambda **kw: KernelNet("fer_vgg16", num_classes=7, **kw).features  # noqa: E731
    out.append((group, "linear conv + max pool", lambda: features(), (bc, 3, 100, 100)))
    for kind in ("poly", "gauss"):
        out.append((group, f"{kind} conv", lambda k=kind: features(conv_kernel=k), (bc, 3, 100, 100)))
    for kind in ("linear", "poly"):
        out.append((group, f"kernel_{kind} pool", lambda k=kind: features(pool_type=f"kernel_{k}"), (bc, 3, 100, 100)))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=None, help="dense-layer batch (default 64 CPU, 256 GPU)")
    parser.add_argument("--conv-batch", type=int, default=None, help="conv/pool batch (default 2 CPU, 64 GPU)")
    parser.add_argument("--amp", choices=["bf16", "fp16"], default=None)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default=None, help="run only groups whose name contains this text")
    args = parser.parse_args(argv)
    gpu = args.device.startswith("cuda")
    args.batch = args.batch or (256 if gpu else 64)
    args.conv_batch = args.conv_batch or (64 if gpu else 2)
    clock = "process CPU time" if bench_clock(args.device) is time.process_time else "wall time"
    print(f"device={args.device} amp={args.amp} threads={torch.get_num_threads()} clock={clock}")
    print("| layer group | layer | fwd ms | fwd ratio | fwd+bwd ms | fwd+bwd ratio |\n|---|---|---|---|---|---|")
    groups: dict[str, list[tuple[str, Callable[[], nn.Module], tuple[int, ...]]]] = {}
    for group, name, factory, shape in rows(args):
        if not args.only or args.only in group:
            groups.setdefault(group, []).append((name, factory, shape))
    for group, entries in groups.items():
        torch.manual_seed(0)
        modules = [factory().to(args.device) for _, factory, _ in entries]
        x = torch.randn(entries[0][2], device=args.device)
        if "pool" in group or "VGG" in group:
            x = x.relu()  # post-ReLU activations, as a pool sees them
        times = time_group(modules, x, args.warmup, args.repeats, args.amp)
        f0, b0 = times[0]
        for (name, _, _), (fwd, both) in zip(entries, times):
            print(f"| {group} | {name} | {fwd * 1e3:.2f} | {fwd / f0:.2f} | {both * 1e3:.2f} | {both / b0:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
