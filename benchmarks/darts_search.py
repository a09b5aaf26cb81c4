"""Time and peak memory of one DARTS search step at the paper's supernet size, as ratios to first order.

Variants: first order (baseline), second order (unrolled, finite-difference HVP) and PC-DARTS partial
channels (K=4, edge normalisation, first order). Each variant runs in its own process so peak memory
is its own: CUDA ``max_memory_allocated`` on a GPU, the growth of peak RSS over the set-up on CPU.

    python benchmarks/darts_search.py                   # CPU, 8 cells, C=16, batch 64, 32x32
    python benchmarks/darts_search.py --device cuda --batch 64 --repeats 10
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

VARIANTS = {"first_order": {}, "second_order": {"unrolled": True}, "pc_darts_k4": {"partial_channels": 4, "edge_norm": True}}


def one_variant(name: str, device: str, batch: int, repeats: int, layers: int, C: int) -> dict:
    import torch
    import torch.nn.functional as F

    from zoo.nas.search_net import SearchNetwork
    from zoo.nas.unrolled import unrolled_arch_grads

    torch.manual_seed(0)
    kw = VARIANTS[name]
    net = SearchNetwork(C=C, layers=layers, num_classes=10, partial_channels=kw.get("partial_channels", 1),
                        edge_norm=kw.get("edge_norm", False)).to(device)
    opt_w = torch.optim.SGD(net.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    opt_a = torch.optim.Adam(net.arch_parameters(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    data = [(torch.rand(batch, 3, 32, 32, device=device), torch.randint(0, 10, (batch,), device=device)) for _ in range(2)]
    named = dict(net.named_parameters())
    arch_ids = {id(p) for p in net.arch_parameters()}
    w_names = [n for n, p in named.items() if id(p) not in arch_ids]
    a_names = [n for n, p in named.items() if id(p) in arch_ids]

    def step() -> None:
        (xt, yt), (xv, yv) = data
        opt_a.zero_grad()
        if kw.get("unrolled"):
            bufs = [opt_w.state.get(named[n], {}).get("momentum_buffer") for n in w_names]
            grads, _ = unrolled_arch_grads(net, w_names, a_names, (xt, yt), (xv, yv), F.cross_entropy, xi=0.025,
                                           momentum=0.9, weight_decay=3e-4, momentum_buffers=bufs)
            for n, g in zip(a_names, grads):
                named[n].grad = g
        else:
            F.cross_entropy(net(xv), yv).backward()
        opt_a.step()
        opt_w.zero_grad()
        F.cross_entropy(net(xt), yt).backward()
        torch.nn.utils.clip_grad_norm_(net.weight_parameters(), 5.0)
        opt_w.step()

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    cpu_base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # RSS high-water mark before any step
    step()  # warm-up (also creates the momentum buffers)
    sync()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = cpu_base
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    peak = (torch.cuda.max_memory_allocated() if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"variant": name, "step_s": sorted(times)[len(times) // 2], "peak_extra_mb": (peak - base) / 2**20,
            "peak_mb": peak / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--C", type=int, default=16)
    ap.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        print(json.dumps(one_variant(args.variant, args.device, args.batch, args.repeats, args.layers, args.C)))
        return
    rows = []
    for name in VARIANTS:
        cmd = [sys.executable, __file__, "--variant", name, "--device", args.device, "--batch", str(args.batch),
               "--repeats", str(args.repeats), "--layers", str(args.layers), "--C", str(args.C)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        rows.append(json.loads(out))
    base = rows[0]
    print(f"DARTS search step, {args.layers} cells, C={args.C}, batch {args.batch}, 32x32, device {args.device}")
    print(f"{'variant':<14} {'step s':>8} {'time x':>7} {'peak MB':>9} {'memory x':>9}")
    for r in rows:
        mem_key = "peak_mb" if args.device.startswith("cuda") else "peak_extra_mb"
        print(f"{r['variant']:<14} {r['step_s']:8.3f} {r['step_s'] / base['step_s']:7.2f} {r[mem_key]:9.1f} "
              f"{r[mem_key] / max(base[mem_key], 1e-9):9.2f}")


if __name__ == "__main__":
    main()
