"""Deployment speed: eager PyTorch, torch.compile and ONNX Runtime, as ratios to eager, all in one run.

Per model: latency at batch 1 (ms) and throughput at batch 32 (images/s); compile and ONNX Runtime as speed-ups
over eager (> 1: faster). Then SSP-Net's FPS at each cut against its full network (the paper: ~120 FPS full,
> 200 FPS cut, i.e. ~1.7x) and RRR-Net [C] (ResNet-152 reduced to 5 blocks) against the full ResNet-152.
Each cell is the median of repeated calls after warm-up, backends alternating so outside load hits them alike,
and capped at ``--cell-seconds``.

    OMP_NUM_THREADS=1 python benchmarks/deploy.py --threads 1            # CPU
    python benchmarks/deploy.py --device cuda                           # GPU (ONNX Runtime's CUDA provider)
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zoo.export import export, input_shapes, load_network  # noqa: E402

MODELS = ["quickstart_cnn", "kdl_digits", "mrs_digits", "darts_digits", "rrrnet_tiny", "sspnet_synthetic"]
PAPER_FPS_FULL, PAPER_FPS_CUT = 120.0, 200.0  # SSP-Net abstract (GPU not stated)


class Backend:
    """A callable on one device, or the reason it is not available."""

    def __init__(self, fn: Callable[..., object] | None, why: str = "") -> None:
        self.fn, self.why = fn, why


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def eager(net: nn.Module, device: str) -> Backend:
    net = net.to(device).eval()
    return Backend(lambda *xs: net(*xs))


def compiled(net: nn.Module, device: str) -> Backend:
    torch._dynamo.reset()  # every model is a fresh compile (their wrappers share one forward: no recompile limit)
    try:
        fn = torch.compile(net.to(device).eval(), dynamic=False)
    except Exception as err:  # noqa: BLE001
        return Backend(None, f"torch.compile: {str(err).splitlines()[0][:80]}")
    return Backend(lambda *xs: fn(*xs))


def onnxruntime_backend(net: nn.Module, shapes, device: str, workdir: Path, tag: str) -> Backend:
    try:
        import onnxruntime as ort
    except ImportError:
        return Backend(None, "onnxruntime not installed (pip install 'ibisc-zoo[export]')")
    example = tuple(torch.rand(2, *s) for s in shapes)
    try:
        cpu_net = copy.deepcopy(net).cpu().eval()  # the eager backend keeps its device
        path = export(cpu_net, example, "onnx", workdir / f"{tag}.onnx", label=tag)
    except Exception as err:  # noqa: BLE001
        return Backend(None, f"export: {str(err)[:80]}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return Backend(None, "onnxruntime has no CUDAExecutionProvider (pip install onnxruntime-gpu)")
        providers = ["CUDAExecutionProvider"]
    sess = ort.InferenceSession(str(path), opts, providers=providers)
    names = [i.name for i in sess.get_inputs()]
    # host arrays in, host arrays out: on CUDA this includes the copies, as a served model pays them
    return Backend(lambda *xs: sess.run(None, {n: x.cpu().numpy() for n, x in zip(names, xs)}))


def bench_clock(device: str):
    """Process CPU time for a one-thread CPU run (other jobs on a shared machine then cost nothing but cache),
    wall time otherwise (GPU, or several threads)."""
    return time.process_time if device == "cpu" and torch.get_num_threads() == 1 else time.perf_counter


def time_cells(backends: dict[str, Backend], xs: tuple[torch.Tensor, ...], device: str, warmup: int,
               repeats: int, cell_seconds: float) -> dict[str, float]:
    """Median seconds per call of each available backend; rounds alternate between backends."""
    clock = bench_clock(device)
    live = {k: b for k, b in backends.items() if b.fn is not None}
    times: dict[str, list[float]] = {k: [] for k in live}
    dev_xs = tuple(x.to(device) for x in xs)
    with torch.no_grad():
        for k, b in live.items():
            for _ in range(warmup):
                b.fn(*dev_xs)
            _sync(device)
        start = time.perf_counter()
        for r in range(repeats):
            for k, b in live.items():
                t0 = clock()
                b.fn(*dev_xs)
                _sync(device)
                times[k].append(clock() - t0)
            if r >= 2 and time.perf_counter() - start > cell_seconds:
                break
    return {k: statistics.median(v) for k, v in times.items()}


def _ratio(base: float | None, other: float | None) -> str:
    return f"{base / other:.2f}" if base and other else "-"


def model_rows(names: list[str], args, workdir: Path) -> None:
    print("\n| model | eager b=1 ms | compile b=1 x | ORT b=1 x | eager b=32 img/s | compile b=32 x | ORT b=32 x |")
    print("|---|---|---|---|---|---|---|")
    notes: set[str] = set()
    for name in names:
        net, reg, _ = load_network(name)
        shapes = input_shapes(reg, net)
        backends = {"eager": eager(net, args.device),
                    "compile": compiled(net, args.device) if args.compile else Backend(None, "--no-compile"),
                    "ort": onnxruntime_backend(net, shapes, args.device, workdir, name)}
        net.to(args.device)
        cells = {}
        for batch in (1, 32):
            xs = tuple(torch.rand(batch, *s) for s in shapes)
            try:
                cells[batch] = time_cells(backends, xs, args.device, args.warmup, args.repeats, args.cell_seconds)
            except Exception as err:  # noqa: BLE001 - e.g. torch.compile failing at its first call
                backends["compile"] = Backend(None, f"torch.compile: {str(err).splitlines()[0][:100]}")
                cells[batch] = time_cells(backends, xs, args.device, args.warmup, args.repeats, args.cell_seconds)
        notes.update(b.why for b in backends.values() if b.why)
        e1, e32 = cells[1]["eager"], cells[32]["eager"]
        print(f"| {name} | {e1 * 1e3:.2f} | {_ratio(e1, cells[1].get('compile'))} | {_ratio(e1, cells[1].get('ort'))} "
              f"| {32 / e32:.0f} | {_ratio(e32, cells[32].get('compile'))} | {_ratio(e32, cells[32].get('ort'))} |",
              flush=True)
    for note in sorted(notes):
        print(f"  not measured: {note}")


def sspnet_cuts(args, workdir: Path) -> None:
    """FPS of the reference SSP-Net (24 blocks) truncated at several cuts, eager and ONNX Runtime, at batch 1."""
    size = args.sspnet_size
    cuts = [int(c) for c in args.cuts.split(",")]
    print(f"\nSSP-Net reference (K=8, L=4, 24 blocks, random weights), {size}x{size}, batch 1; paper: "
          f"{PAPER_FPS_FULL:.0f} FPS full, > {PAPER_FPS_CUT:.0f} FPS cut ({PAPER_FPS_CUT / PAPER_FPS_FULL:.2f}x)")
    print("| cut | eager FPS | eager vs full | ORT FPS | ORT vs full |\n|---|---|---|---|---|")
    import zoo
    from zoo.export import _Deployed

    base = zoo.create_model("sspnet", input_size=size).eval()
    shapes = [(3, size, size)]
    xs = tuple(torch.rand(1, *s) for s in shapes)
    fps: dict[int, dict[str, float]] = {}
    for cut in cuts:
        net = _Deployed(base, cut).eval()
        backends = {"eager": eager(net, args.device),
                    "ort": onnxruntime_backend(net, shapes, args.device, workdir, f"sspnet_cut{cut}")}
        fps[cut] = {k: 1.0 / v for k, v in time_cells(backends, xs, args.device, args.warmup, args.repeats,
                                                       args.cell_seconds).items()}
    full = fps[max(cuts)]
    for cut in cuts:
        f = fps[cut]
        print(f"| {cut} | {f['eager']:.1f} | {f['eager'] / full['eager']:.2f} | {f.get('ort', float('nan')):.1f} | "
              f"{f.get('ort', float('nan')) / full.get('ort', float('nan')):.2f} |", flush=True)


def rrrnet_pair(args, workdir: Path) -> None:
    """RRR-Net [C] against the full ResNet-152 (random weights, 20 classes), eager and ONNX Runtime."""
    import zoo

    size = args.rrr_size
    shapes = [(3, size, size)]
    print(f"\nRRR-Net [C] vs ResNet-152 ({size}x{size}, 20 classes, random weights): speed-up of [C]")
    print("| backend | batch | ResNet-152 ms | [C] ms | ResNet-152 / [C] |\n|---|---|---|---|---|")
    nets = {"resnet152": zoo.create_model("rrrnet_resnet152", num_classes=20).eval(),
            "c": zoo.create_model("rrrnet_reduced", num_classes=20).eval()}
    from zoo.export import _Deployed

    backends = {}
    for key, net in nets.items():
        backends[f"eager {key}"] = eager(net, args.device)
        backends[f"ort {key}"] = onnxruntime_backend(_Deployed(net), shapes, args.device, workdir, f"rrr_{key}")
    for batch in (1, 32):
        xs = tuple(torch.rand(batch, *s) for s in shapes)
        t = time_cells(backends, xs, args.device, 1, args.repeats, args.cell_seconds * 2)
        for b in ("eager", "ort"):
            full, c = t.get(f"{b} resnet152"), t.get(f"{b} c")
            if full and c:
                print(f"| {b} | {batch} | {full * 1e3:.1f} | {c * 1e3:.1f} | {full / c:.2f} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch (and ONNX Runtime) intra-op threads")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--cell-seconds", type=float, default=3.0, help="stop repeating a cell after this long")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip torch.compile")
    parser.add_argument("--sspnet-size", type=int, default=None, help="default 256 on GPU, 128 on CPU")
    parser.add_argument("--cuts", default="1,6,12,18,24")
    parser.add_argument("--rrr-size", type=int, default=128)
    parser.add_argument("--skip", default="", help="comma list of sections to skip: models,sspnet,rrrnet")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible to torch")
    args.sspnet_size = args.sspnet_size or (256 if args.device.startswith("cuda") else 128)
    os.environ.setdefault("ZOO_CHECK_INPUTS", "0")
    warnings.filterwarnings("ignore")
    skip = set(args.skip.split(","))
    clock = "process CPU time" if bench_clock(args.device) is time.process_time else "wall time"
    print(f"device={args.device} threads={torch.get_num_threads()} torch={torch.__version__} clock={clock} "
          f"(ratios: speed-up over eager, > 1 is faster)")
    with tempfile.TemporaryDirectory() as tmp:
        if "models" not in skip:
            model_rows([m for m in args.models.split(",") if m], args, Path(tmp))
        if "sspnet" not in skip:
            sspnet_cuts(args, Path(tmp))
        if "rrrnet" not in skip:
            rrrnet_pair(args, Path(tmp))


if __name__ == "__main__":
    main()
