"""Kernel layers (Mahmoudi et al. 2020/2023) against their linear counterparts: forward+backward time as ratios.

At the papers' sizes: a dense layer 4608 -> 4096 (the first FC of a VGG-16 head at 100x100) and
4096 -> 4096, the first VGG-16 pooling (64 x 100 x 100), and the whole VGG-16 conv stack at 100x100
with every conv (or every pool) kernelized. Each row's ratio is against the linear layer timed in the
same process on the same device.

    python benchmarks/kdl_layers.py                       # CPU, small batches
    python benchmarks/kdl_layers.py --device cuda --batch 64 --amp bf16
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def time_fwd_bwd(module: nn.Module, x: torch.Tensor, warmup: int, repeats: int, amp: str | None) -> float:
    """Median seconds of ``module(x).sum().backward()`` (train mode) after ``warmup`` calls."""
    module.train()
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp or "")
    x = x.detach().requires_grad_(True)

    def step() -> None:
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
            out = module(x)
        out.float().sum().backward()

    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    module.zero_grad(set_to_none=True)
    return statistics.median(times)


def rows(args) -> list[tuple[str, str, Callable[[], nn.Module], tuple[int, ...]]]:
    """(group, name, module factory, input shape); the first row of each group is its linear baseline."""
    from zoo.kdl.kernels import KernelLinear, KernelPool2d
    from zoo.kdl.nets import KernelNet

    b, bc = args.batch, args.conv_batch
    out: list = []
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
    print(f"device={args.device} amp={args.amp} threads={torch.get_num_threads()}")
    print("| layer group | layer | fwd+bwd ms | ratio vs linear |\n|---|---|---|---|")
    baseline: dict[str, float] = {}
    for group, name, factory, shape in rows(args):
        if args.only and args.only not in group:
            continue
        torch.manual_seed(0)
        module = factory().to(args.device)
        x = torch.randn(shape, device=args.device)
        if "pool" in group or "VGG" in group:
            x = x.relu()  # post-ReLU activations, as a pool sees them
        seconds = time_fwd_bwd(module, x, args.warmup, args.repeats, args.amp)
        baseline.setdefault(group, seconds)
        print(f"| {group} | {name} | {seconds * 1e3:.2f} | {seconds / baseline[group]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
