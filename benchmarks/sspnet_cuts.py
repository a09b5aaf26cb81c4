"""SSP-Net accuracy/speed trade-off: latency (batch 1, median after warm-up), FPS and the ratio to the full
network for every cut, plus MPJPE per cut of a checkpoint; a table on stdout and optionally a plot.

    python benchmarks/sspnet_cuts.py                                    # reference SSP-Net, 256x256, speed only
    python benchmarks/sspnet_cuts.py --weights sspnet_synthetic --plot cuts.png   # + MPJPE on synthetic figures
    python benchmarks/sspnet_cuts.py --weights runs/x/checkpoints/best.ckpt --plot cuts.png \
        --datamodule datamodules.human36m.Human36MDataModule --data-kwargs '{"data_dir": "/data/h36m"}'
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PAPER_FPS_FULL, PAPER_FPS_CUT = 120.0, 200.0  # SSP-Net abstract: ~120 FPS best, > 200 FPS acceptable (GPU unknown)


class Cut(torch.nn.Module):
    """The network truncated after prediction block ``cut`` (only that block's pose is returned)."""

    def __init__(self, net: torch.nn.Module, cut: int) -> None:
        super().__init__()
        self.net, self.cut = net, cut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, cut=self.cut)[-1]


def build(args) -> torch.nn.Module:
    import zoo
    from zoo.sspnet.net import sspnet_paper, sspnet_tiny

    if args.weights:
        return zoo.load(args.weights)
    return sspnet_tiny() if args.arch == "tiny" else sspnet_paper()


def eval_batches(args, input_size: int):
    """Test batches: a datamodule's test split (``--datamodule``) or unseen synthetic stick figures."""
    if args.datamodule:
        import importlib
        import json

        mod, _, cls = args.datamodule.rpartition(".")
        dm = getattr(importlib.import_module(mod), cls)(**json.loads(args.data_kwargs))
        dm.setup("test")
        seen = 0
        for batch in dm.test_dataloader():
            if seen >= args.eval_samples:
                break
            seen += batch["image"].shape[0]
            yield batch
        return
    from datamodules.synthetic_pose import SyntheticStickFigures

    ds = SyntheticStickFigures(args.eval_samples, input_size, seed=12345)
    for s in range(0, len(ds), 64):
        idx = range(s, min(s + 64, len(ds)))
        yield {k: torch.stack([ds[i][k] for i in idx]) for k in ds[0]}


@torch.no_grad()
def mpjpe_per_block(net: torch.nn.Module, args, device: torch.device) -> list[float]:
    """MPJPE (mm, root-relative, GT root depth) of every block on the evaluation batches."""
    from zoo.sspnet.metrics import PerBlockPoseMetrics, lift_to_camera

    metric = PerBlockPoseMetrics(net.num_blocks).to(device)
    for batch in eval_batches(args, net.input_size):
        part = {k: v.to(device) for k, v in batch.items()}
        keep = part["has3d"] > 0
        poses = net(part["image"][keep])
        metric.update([lift_to_camera(p, part["camera"][keep], part["crop"][keep], part["root_z"][keep],
                                      part["depth_range"][keep]) for p in poses], part["pose3d"][keep])
    return metric.compute()["mpjpe"].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=["paper", "tiny"], default="paper")
    parser.add_argument("--weights", help="registry name, zoo weights file or zoo fit checkpoint (overrides --arch)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--half", action="store_true", help="time in float16 autocast (GPU)")
    parser.add_argument("--eval-samples", type=int, default=512, help="samples for MPJPE (needs --weights)")
    parser.add_argument("--datamodule", help="dotted DataModule class whose test split gives MPJPE, e.g. "
                        "datamodules.human36m.Human36MDataModule (default: synthetic stick figures)")
    parser.add_argument("--data-kwargs", default="{}", help="JSON keyword arguments of --datamodule")
    parser.add_argument("--plot", help="write the MPJPE/FPS trade-off plot to this PNG")
    args = parser.parse_args()

    from zoo.core.profiling import count_macs, count_params, measure_latency

    device = torch.device(args.device)
    net = build(args).to(device).eval()
    x = torch.rand(args.batch, net.in_chans, net.input_size, net.input_size, device=device)
    rows = []
    for cut in range(1, net.num_blocks + 1):
        model = Cut(net, cut)
        with torch.autocast(device.type, dtype=torch.float16, enabled=args.half):
            lat = measure_latency(model, x, warmup=args.warmup, repeats=args.repeats)
        rows.append({"cut": cut, "level": net.levels[cut - 1], "latency_ms": 1e3 * lat, "fps": args.batch / lat,
                     "macs": count_macs(model, x[:1])})
    errors = mpjpe_per_block(net, args, device) if args.weights else [float("nan")] * len(rows)
    full = rows[-1]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; batch {args.batch}; {'fp16 autocast' if args.half else 'fp32'}; input "
          f"{net.input_size}x{net.input_size}; {count_params(net) / 1e6:.2f} M params; torch {torch.__version__}")
    print(f"{'cut':>4} {'level':>5} {'MMACs':>7} {'latency ms':>10} {'FPS':>8} {'speed-up':>12} {'MPJPE mm':>9}")
    for r, e in zip(rows, errors):
        print(f"{r['cut']:>4} {r['level']:>5} {r['macs'] / 1e6:>7.2f} {r['latency_ms']:>10.2f} {r['fps']:>8.1f} "
              f"{full['latency_ms'] / r['latency_ms']:>12.2f} {e:>9.1f}")
    if device.type == "cuda":
        print(f"full network: {full['fps']:.0f} FPS here vs ~{PAPER_FPS_FULL:.0f} FPS claimed by the paper (its GPU "
              f"unknown); fastest cut {rows[0]['fps']:.0f} FPS vs > {PAPER_FPS_CUT:.0f} claimed")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        if args.weights:
            ax.plot([r["fps"] for r in rows], errors, marker="o")
            for r, e in zip(rows, errors):
                ax.annotate(str(r["cut"]), (r["fps"], e), fontsize=7)
            ax.set_ylabel("MPJPE (mm)")
        else:
            ax.plot([r["cut"] for r in rows], [r["fps"] for r in rows], marker="o")
            ax.set_ylabel("FPS")
        ax.set_xlabel("FPS (batch %d, %s)" % (args.batch, name) if args.weights else "cut (prediction block)")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
