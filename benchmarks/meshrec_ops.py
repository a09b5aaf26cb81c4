"""Mesh operations of the mesh-reconstruction paper (torch stand-ins for pytorch3d): each timed against a baseline
in the same process on the same device, printed as ratios.

- chamfer distance in blocks of ``chunk`` pairs vs one ``cdist`` over the whole clouds (10k x 10k points);
- the edge table by 1-D integer keys vs ``torch.unique(dim=0)`` (icosphere level 4);
- our pytorch3d-semantics ``GraphConv`` vs ``torch_geometric.nn.GraphConv`` (same graph, same widths);
- exact EMD (scipy assignment) and voxel IoU at 32^3 (winding numbers), absolute times only.

    python benchmarks/meshrec_ops.py               # CPU, one thread
    python benchmarks/meshrec_ops.py --device cuda --threads 0
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.core.mesh import metrics, ops  # noqa: E402


def best_time(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Best-of-``repeats`` wall time of ``fn`` in milliseconds (synchronised on CUDA)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) * 1e3)
    return best


def row(name: str, ours: float, base: float, base_name: str) -> None:
    print(f"{name:<34} {ours:9.2f} ms   {base_name:<28} {base:9.2f} ms   speed-up x{base / ours:5.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: leave torch's default)")
    ap.add_argument("--points", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    print(f"device {dev}, torch threads {torch.get_num_threads()}, {args.points} points per cloud")

    x = torch.randn(1, args.points, 3, generator=g).to(dev)
    y = torch.randn(1, args.points, 3, generator=g).to(dev)
    full = best_time(lambda: ops.chamfer_distance(x, y, chunk=None), dev, args.repeats)
    for chunk in (1_000_000, 4_000_000, 16_000_000, "auto"):
        row(f"chamfer, blocks of {chunk if chunk == 'auto' else format(chunk, '.0e')} pairs", best_time(lambda: ops.chamfer_distance(x, y, chunk=chunk), dev,
                                                                args.repeats), full, "one cdist (chunk=None)")

    v, f = ops.icosphere(4, device=dev)
    e = ops._face_edges(f).sort(dim=1).values
    row("edge table, 1-D keys (ico 4)", best_time(lambda: ops.unique_edges(f), dev, args.repeats * 10),
        best_time(lambda: torch.unique(e, dim=0), dev, args.repeats * 10), "unique(dim=0)")

    try:
        from torch_geometric.nn import GraphConv as PygGraphConv
    except ImportError:  # pragma: no cover - torch_geometric is a dependency of the zoo
        PygGraphConv = None
    if PygGraphConv is not None:
        edges = ops.unique_edges(f)
        both = torch.cat([edges, edges.flip(1)]).t().contiguous()
        feats = torch.randn(v.shape[0], 128, device=dev)
        ours, pyg = ops.GraphConv(128, 128).to(dev), PygGraphConv(128, 128, aggr="add").to(dev)
        with torch.no_grad():
            row("GraphConv 128->128 (ico 4)", best_time(lambda: ours(feats, edges), dev, args.repeats * 10),
                best_time(lambda: pyg(feats, both), dev, args.repeats * 10), "torch_geometric GraphConv")

    a = torch.randn(2048, 3, generator=g)
    b = torch.randn(2048, 3, generator=g)
    print(f"{'exact EMD, 2048 points (scipy)':<34} {best_time(lambda: metrics.emd_exact(a, b), dev, 1):9.2f} ms")
    s1 = ops.icosphere(3)
    s2 = (s1[0] * 0.9 + 0.05, s1[1])
    print(f"{'voxel IoU 32^3, two ico-3 meshes':<34} {best_time(lambda: metrics.voxel_iou(s1, s2), dev, 1):9.2f} ms")


if __name__ == "__main__":
    main()
