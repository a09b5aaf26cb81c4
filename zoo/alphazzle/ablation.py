"""The ablation table of Alphazzle (arXiv 2302.00384, spec sections 9 and 13): random, greedy-V, greedy-P,
MCTS with P and V, MCTS without P, MCTS with ground-truth values, all with the same P and V on the same puzzles.

    python -m zoo.alphazzle.ablation --weights alphazzle_digits --num_simulations 100
    python -m zoo.alphazzle.ablation --weights runs/alphazzle_tiny/checkpoints/last.ckpt --data met --data_dir data/MET
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from zoo.alphazzle.game import Puzzle
from zoo.alphazzle.nets import AlphazzleNet
from zoo.alphazzle.solve import solve

TABLE_SOLVERS = ("random", "greedy_v", "greedy_p", "mcts", "mcts_no_p", "mcts_oracle_sparse", "mcts_oracle_dense")
LABELS = {"random": "random placement", "greedy_v": "Greedy-V (one-step look-ahead)", "greedy_p": "Greedy-P",
          "mcts": "MCTS P + V", "mcts_no_p": "MCTS uniform prior + V (no P)",
          "mcts_oracle_sparse": "MCTS P + sparse ground truth", "mcts_oracle_dense": "MCTS P + dense oracle",
          "mcts_constant_v": "MCTS P + constant value"}


def evaluate_solvers(net: AlphazzleNet, images: torch.Tensor, orders: torch.Tensor,
                     solvers: tuple[str, ...] = TABLE_SOLVERS, seed: int = 0, helpers: int = 0,
                     **mcts_kwargs) -> dict[str, dict]:
    """Mean fragment / perfect / neighbour accuracy and seconds per puzzle of each solver on the same puzzles."""
    net.eval()
    out = {}
    for name in solvers:
        rng = np.random.default_rng(seed)
        rows, t0 = [], time.perf_counter()
        for img, order in zip(images, orders):
            puzzle = Puzzle.from_image(img, net.grid, net.frag, net.gap, order=order.tolist(), helpers=helpers)
            state, _ = solve(name, puzzle, net, generator=rng, **mcts_kwargs)
            rows.append(puzzle.metrics(state))
        secs = (time.perf_counter() - t0) / max(len(rows), 1)
        out[name] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} | {"s_per_puzzle": secs}
    return out


def format_table(results: dict[str, dict]) -> str:
    """Markdown table of :func:`evaluate_solvers`' results."""
    lines = ["| solver (same P, V) | fragments | perfect | neighbours | s/puzzle |", "|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {LABELS.get(name, name)} | {r['frag_acc']:.3f} | {r['perfect']:.3f} | "
                     f"{r['neighbour_acc']:.3f} | {r['s_per_puzzle']:.3f} |")
    return "\n".join(lines)


def _test_puzzles(args) -> tuple[torch.Tensor, torch.Tensor]:
    from datamodules.puzzles import DigitsPuzzleDataModule, FolderPuzzleDataModule

    if args.data == "digits":
        dm = DigitsPuzzleDataModule(seed=args.seed)
    else:
        dm = FolderPuzzleDataModule(data_dir=args.data_dir, seed=args.seed)
    dm.setup()
    ds = dm.datasets["test"]
    n = min(len(ds), args.num_puzzles)
    items = [ds[i] for i in range(n)]
    return torch.stack([x for x, _ in items]), torch.stack([o for _, o in items])


def main(argv: list[str] | None = None) -> dict[str, dict]:
    import zoo

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default="alphazzle_digits", help="registry name, weights file or zoo fit checkpoint")
    ap.add_argument("--data", choices=("digits", "met"), default="digits")
    ap.add_argument("--data_dir", default="data/MET")
    ap.add_argument("--num_puzzles", type=int, default=100)
    ap.add_argument("--num_simulations", type=int, default=100)
    ap.add_argument("--c_puct", type=float, default=1.0)
    ap.add_argument("--leaf_batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num_helpers", type=int, default=0, help="fragments placed by ground truth before solving")
    ap.add_argument("--solvers", nargs="*", default=list(TABLE_SOLVERS))
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    net = zoo.load(args.weights)
    images, orders = _test_puzzles(args)
    res = evaluate_solvers(net, images, orders, tuple(args.solvers), seed=args.seed, helpers=args.num_helpers,
                           num_simulations=args.num_simulations, c_puct=args.c_puct, leaf_batch=args.leaf_batch)
    print(format_table(res))
    return res


if __name__ == "__main__":
    main()
