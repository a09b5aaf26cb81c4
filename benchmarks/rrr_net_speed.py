"""RRR-Net model card: parameters, MACs and latency of [A]/[B] (full ResNet152), [C] (5 blocks, B = 1) and
[D] (5 blocks, B = 8) at 128x128 and 20 classes, all on the same device; latency ratios against [B].
The latency protocol (batch 1 and 32, eval mode, warm-up, median) is reconstructed: the paper's was not retrieved.

    OMP_NUM_THREADS=1 python benchmarks/rrr_net_speed.py --device cpu --threads 1
    python benchmarks/rrr_net_speed.py --device cuda --repeats 100
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zoo.backbone_reduction.build import build_rrrnet  # noqa: E402
from zoo.core.profiling import count_macs, count_params  # noqa: E402

METHODS = {
    "[A] full, head only": dict(nb_blocks=None),
    "[B] full fine-tuned": dict(nb_blocks=None),
    "[C] 5 blocks, B=1": dict(num_branches=1),
    "[D] 5 blocks, B=8": dict(num_branches=8),
}


@torch.inference_mode()
def interleaved_latency(models: list[torch.nn.Module], x: torch.Tensor, warmup: int, repeats: int) -> list[float]:
    """Median seconds of one eval-mode forward of each model; calls alternate between models, so load from other
    processes on a shared machine hits every model alike (CUDA synchronised)."""
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    for model in models:
        for _ in range(warmup):
            model(x)
    sync()
    times: list[list[float]] = [[] for _ in models]
    for _ in range(repeats):
        for i, model in enumerate(models):
            t0 = time.perf_counter()
            model(x)
            sync()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def trainable(name: str, net: torch.nn.Module) -> int:
    if name.startswith("[A]"):
        return sum(p.numel() for p in net.fc.parameters())
    if hasattr(net, "branches"):
        return sum(p.numel() for p in net.branches.parameters())
    return count_params(net)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--num-classes", type=int, default=20)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=100, help="timed calls at batch 1")
    parser.add_argument("--repeats-large", type=int, default=None, help="timed calls at larger batches (default: repeats)")
    parser.add_argument("--csv", default=None, help="also write the table here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows, nets = [], []
    for name, kw in METHODS.items():
        torch.manual_seed(0)
        net = build_rrrnet(args.num_classes, **kw).to(device).eval()
        nets.append(net)
        rows.append({"method": name, "params_M": count_params(net) / 1e6, "trainable_M": trainable(name, net) / 1e6,
                     "MACs_G": count_macs(net, (1, 3, args.image_size, args.image_size), device=device) / 1e9})
    for bs in args.batch_sizes:
        reps = args.repeats if bs == 1 else (args.repeats_large or args.repeats)
        x = torch.rand(bs, 3, args.image_size, args.image_size, device=device)
        for row, sec in zip(rows, interleaved_latency(nets, x, min(args.warmup, reps), reps)):
            row[f"latency_b{bs}_ms"] = 1e3 * sec
    base = rows[1]  # [B]
    for row in rows:
        for bs in args.batch_sizes:
            row[f"speedup_vs_B_b{bs}"] = base[f"latency_b{bs}_ms"] / row[f"latency_b{bs}_ms"]
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} thread(s)"
    print(f"device: {dev}; input {args.image_size}x{args.image_size}, {args.num_classes} classes, median of "
          f"{args.repeats} (batch 1) / {args.repeats_large or args.repeats} (larger) interleaved calls after warm-up; "
          "[A] and [B] are the same network at inference (their gap is measurement noise)")
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    c = rows[2]
    print(f"[B]/[C]: {base['params_M'] / c['params_M']:.2f}x params, {base['MACs_G'] / c['MACs_G']:.2f}x MACs, "
          + ", ".join(f"{c[f'speedup_vs_B_b{bs}']:.2f}x latency at batch {bs}" for bs in args.batch_sizes))
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
