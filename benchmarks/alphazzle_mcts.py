"""Alphazzle MCTS: simulations per second with batched leaf evaluation (virtual loss, one P call and one V call
per batch of leaves) against one-at-a-time evaluation, on the same puzzle with the same networks.

Each run plays a whole puzzle (9 moves, tree reused across moves) from a fresh tree; the ratio is against the
``leaf_batch=1`` run (which is the sequential search) timed in the same process on the same device.

    python benchmarks/alphazzle_mcts.py                                  # CPU, small encoder, digits geometry
    python benchmarks/alphazzle_mcts.py --encoder wrn28_4 --grid 3 --frag 40 --gap 4 --device cuda --sims 1000
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.alphazzle.game import Puzzle  # noqa: E402
from zoo.alphazzle.nets import AlphazzleNet  # noqa: E402
from zoo.alphazzle.solve import NetworkEvaluator, solve_mcts  # noqa: E402


def sims_per_second(net: AlphazzleNet, puzzle: Puzzle, sims: int, leaf_batch: int, device: torch.device,
                    repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` simulations/s over one full puzzle, and the mean leaves per network call."""
    best, per_call = 0.0, 0.0
    for _ in range(repeats):
        ev = NetworkEvaluator(net, puzzle, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        _, info = solve_mcts(puzzle, ev, num_simulations=sims, leaf_batch=leaf_batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rate = sims * puzzle.num_actions / (time.perf_counter() - t0)
        best, per_call = max(best, rate), info["evaluations"] / max(ev.calls, 1)
    return best, per_call


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoder", default="small", choices=("small", "wrn28_4"))
    ap.add_argument("--grid", type=int, default=3)
    ap.add_argument("--frag", type=int, default=6)
    ap.add_argument("--gap", type=int, default=2)
    ap.add_argument("--sims", type=int, default=200, help="simulations per move")
    ap.add_argument("--batches", type=int, nargs="*", default=[1, 8, 16, 64])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    net = AlphazzleNet(args.grid, args.frag, args.gap, encoder=args.encoder).to(device).eval()
    side = args.grid * args.frag + (args.grid - 1) * args.gap
    puzzle = Puzzle.from_image(torch.rand(3, side, side) * 2 - 1, args.grid, args.frag, args.gap,
                               generator=torch.Generator().manual_seed(0))
    sims_per_second(net, puzzle, 5, 1, device, 1)  # warm-up
    print(f"device={device} threads={torch.get_num_threads()} encoder={args.encoder} "
          f"canvas={side}px sims/move={args.sims}")
    print("| leaf batch | sims/s | leaves per call | speed-up vs batch 1 |")
    print("|---|---|---|---|")
    base = None
    for b in args.batches:
        rate, per_call = sims_per_second(net, puzzle, args.sims, b, device, args.repeats)
        base = base or rate
        print(f"| {b} | {rate:.0f} | {per_call:.1f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
