"""Cost of one training step of each paper config at its paper batch size: seconds per step and peak memory, so a
user can size a machine before renting it (issue 13.5).

Each config runs in its own process through the zoo's CLI (``ZooCLI``, ``run=False``) with its real network and
input size. One real batch is read at batch size 2 from the datamodule (tiny copies of each dataset's real format
from ``tests/fixtures_formats.py``, or ``--data-root`` files where a config's own paths exist), tiled to the
measured batch size before the device transfer, so the datamodule's on-device transforms and the module's own
training step (automatic or manual optimisation) run as in training. The first ``--warmup`` steps are not timed.
Callbacks that only evaluate (kNN monitor, adversarial evaluation, genotype writing) are left out; those that change
the trained network (the pruning schedule) run, with their calibration set cut to one batch.

Batch size: where a config's paper batch B is above ``--max-batch`` N (CPU default 16, none on CUDA), the config is
measured at N/2 and at N, each in its own process (each needs its own peak memory), and time and memory at B come
from a straight line through the two (``t(b) = a + c*b``; memory likewise), marked "est. from N/2, N". Where
B <= N it is measured at B. The batch is the datamodule's ``batch_size``: per half in the architecture searches
(each step also reads as many architecture images), per loader in RRR-Net [D] (8 loaders); SSP-Net's MPII images
(``mix_batch_size``) come on top, in the same ratio at every measured batch.

Time: on CPU, the process CPU time of a step (``time.process_time()``; with ``OMP_NUM_THREADS=1`` the child runs
on one core, so other jobs on the machine do not inflate it) and its wall time; on CUDA, wall time after a
synchronize. Memory: on CPU the peak resident set of the process (``ru_maxrss``; includes Python, torch and the
data copy, about 0.4 GB), on CUDA the peak allocated by torch.

A config that needs the output of an earlier step (a linear evaluation reads a pre-training run, a pruning fine-tune
reads the dense checkpoint, an ImageNet pre-training reads a searched head) gets it from a one-step run of that
step at batch size 2 first (tests/test_paper_configs.py ``CHAINS``), in its own process, not timed.

    OMP_NUM_THREADS=1 python benchmarks/paper_configs.py --steps 1 --warmup 1 --min-time 2 --timeout 300 --markdown
    python benchmarks/paper_configs.py --device cuda                # every paper config on the GPU, at batch B
    python benchmarks/paper_configs.py --only kdl/paper.yaml --steps 5 --max-batch 64
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

SKIP = ("tiny", "quickstart")  # the embedded-data configs are not paper runs
TRAINING_CALLBACKS = ("PruningSchedule",)  # config callbacks that change what a training step computes
MAX_STEPS = 20  # timed steps at most under --min-time


def paper_configs() -> list[str]:
    """Full configs (model and data classes named) under configs/, tiny and quickstart ones left out."""
    import yaml

    out = []
    for p in sorted((ROOT / "configs").rglob("*.yaml")):
        cfg = yaml.safe_load(p.read_text()) or {}
        full = all(isinstance(cfg.get(k), dict) and "class_path" in cfg[k] for k in ("model", "data"))
        if full and not any(s in p.stem for s in SKIP):
            out.append(p.relative_to(ROOT / "configs").as_posix())
    return out


def paper_batch(rel: str) -> tuple[int, int]:
    """(the config's batch size, the MPII batch mixed into each batch, 0 if none)."""
    from test_paper_configs import _merged, data_target

    init = data_target(_merged([ROOT / "configs" / rel]))[2]
    return int(init.get("batch_size", 2)), int(init.get("mix_batch_size") or 0)


def upstream_of(rel: str) -> tuple[str, list[str]] | None:
    """(the config whose run ``rel`` reads, the flags pointing at it with ``{run}``), for configs that need one."""
    from test_paper_configs import CHAINS, NEEDS_UPSTREAM

    return CHAINS[rel] if rel in NEEDS_UPSTREAM else None


def batch_sizes(b: int, max_batch: int | None) -> list[int]:
    """The batch sizes to measure for paper batch ``b``: ``[b]``, or ``[N/2, N]`` above ``--max-batch N``."""
    if max_batch is None or b <= max_batch:
        return [b]
    return [max(max_batch // 2, 1), max_batch]


def fit_line(points: list[tuple[int, float]], b: int) -> float:
    """The value at ``b`` of the straight line through two (batch, value) points (or the one point's value)."""
    if len(points) == 1:
        return points[0][1]
    (b0, y0), (b1, y1) = points
    return y0 + (y1 - y0) * (b - b0) / (b1 - b0)


def _tile(batch, n: int):
    """``batch`` (tensors, lists, tuples, dicts of them) repeated along its first dimension to ``n`` samples."""
    import torch

    if torch.is_tensor(batch) and batch.dim() > 0:
        reps = -(-n // batch.shape[0])
        return batch.repeat(reps, *[1] * (batch.dim() - 1))[:n]
    if isinstance(batch, dict):
        return {k: _tile(v, n) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*[_tile(v, n) for v in batch])
    if isinstance(batch, (list, tuple)):
        if batch and all(torch.is_tensor(v) and v.dim() > 0 for v in batch) and len({v.shape[0] for v in batch}) == 1:
            return type(batch)(_tile(v, n) for v in batch)
        if batch and not torch.is_tensor(batch[0]):  # a list with one entry a sample (meshes, names)
            return type(batch)((list(batch) * (-(-n // len(batch))))[:n])
        return type(batch)(_tile(v, n) for v in batch)
    return batch


def first_batch(loaders):
    """One batch of a training dataloader as the training step receives it: a ``CombinedLoader`` yields
    ``(batch, batch_idx, dataloader_idx)``, several loaders (RRR-Net's one per branch) a list of batches."""
    from lightning.pytorch.utilities import CombinedLoader

    if isinstance(loaders, (list, tuple)):
        return [first_batch(loader) for loader in loaders]
    out = next(iter(loaders))
    return out[0] if isinstance(loaders, CombinedLoader) else out


def _cli(rel: str, device: str, data_root: Path, root_dir: Path, extra: list[str]):
    """``ZooCLI`` (not run) of ``configs/<rel>`` on the tiny data copy, at batch size 2, on ``device``."""
    from lightning.pytorch import LightningDataModule, LightningModule

    import fixtures_formats
    from test_paper_configs import _merged, data_target
    from zoo.cli import ZooCLI

    cfg = _merged([ROOT / "configs" / rel])
    prefix, class_path, init = data_target(cfg)
    args = ["--config", str(ROOT / "configs" / rel), f"--{prefix}.num_workers", "0"]
    val_size = int(init.get("val_size") or 0)
    folder = data_root / f"{class_path.rsplit('.', 1)[-1]}-{val_size}"
    done = folder / "overrides.json"  # built by an earlier config's process
    overrides = json.loads(done.read_text()) if done.is_file() else fixtures_formats.build(class_path, folder, val_size)
    done.write_text(json.dumps(overrides))
    for key, value in overrides.items():
        args += [f"--{prefix}.{key}", value]
    model_init = (cfg.get("model") or {}).get("init_args") or {}
    if str(model_init.get("source", "")).startswith("timm:"):
        os.environ["HF_HUB_CACHE"] = str(fixtures_formats.fake_timm_resnet152(data_root / "hf", model_init["source"][5:]))
    net_init = model_init.get("net_kwargs") or {}
    if model_init.get("pretrained_backbone") or net_init.get("pretrained_backbone"):
        arch = model_init.get("encoder") or net_init.get("encoder") or "resnet50"
        os.environ["TORCH_HOME"] = str(fixtures_formats.fake_torchvision_weights(data_root / "torch_home", arch))
    args += ["--trainer.accelerator", "gpu" if device == "cuda" else "cpu", "--trainer.devices", "1",
             "--trainer.strategy", "auto", "--trainer.num_nodes", "1", "--trainer.logger", "false",
             "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
             "--checkpoint.monitor", "null", "--trainer.default_root_dir", str(root_dir),
             "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0", "--trainer.max_epochs", "1",
             *extra]
    for key in ("batch_size", "mix_batch_size"):  # SSP-Net mixes a fixed MPII batch into each batch
        if key in init or key == "batch_size":
            args += [f"--{prefix}.{key}", "2"]
    cli = ZooCLI(LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                 parser_kwargs={"allow_abbrev": False}, args=args, run=False,
                 save_config_callback=None)
    return cli


def _keep(callback) -> bool:
    """Lightning's and the CLI's own callbacks, and the config's that change the training step."""
    return not type(callback).__module__.startswith("callbacks.") or type(callback).__name__ in TRAINING_CALLBACKS


def run_upstream(rel: str, device: str, data_root: Path, root_dir: Path) -> None:
    """One training step of ``configs/<rel>`` at batch size 2, writing what a later step reads (checkpoint,
    genotype): the config's own callbacks kept, except the evaluation-only ones."""
    cli = _cli(rel, device, data_root, root_dir, ["--trainer.max_steps", "1", "--checkpoint.save_last", "true"])
    evaluation_only = ("KNNMonitor", "AdversarialEvaluation")
    cli.trainer.callbacks[:] = [cb for cb in cli.trainer.callbacks if type(cb).__name__ not in evaluation_only]
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)


def measure(rel: str, device: str, steps: int, warmup: int, data_root: Path, batch_size: int,
            upstream_run: str | None, min_time: float = 0.0) -> dict:
    """Time ``steps`` training steps of ``configs/<rel>`` at ``batch_size``, in this process; more (up to
    ``MAX_STEPS``) while the timed steps add up to less than ``min_time`` seconds."""
    import torch
    from lightning.pytorch import Callback

    total = warmup + (max(steps, MAX_STEPS) if min_time > 0 else steps)
    extra = ["--trainer.max_steps", str(total), "--checkpoint.save_last", "false",
             "--checkpoint.save_top_k", "0"]
    chain = upstream_of(rel)
    if chain and upstream_run:
        extra += [f.format(run=upstream_run) for f in chain[1]]
    cli = _cli(rel, device, data_root, data_root / "runs" / rel.replace("/", "_"), extra)
    cli.trainer.callbacks[:] = [cb for cb in cli.trainer.callbacks if _keep(cb)]
    for cb in cli.trainer.callbacks:  # a pruning schedule's calibration set: one batch (it is not timed)
        policy = getattr(cb, "policy", None)
        if policy is not None and hasattr(policy, "num_samples"):
            policy.num_samples = min(policy.num_samples, batch_size)
            if hasattr(policy, "batch_size"):
                policy.batch_size = min(policy.batch_size, batch_size)
                getattr(policy, "mrs_kwargs", {}).update(batch_size=policy.batch_size)
    dm = cli.datamodule
    dm.prepare_data()
    dm.setup("fit")
    loaders = dm.train_dataloader()
    batch = first_batch(loaders)
    paper, mix = paper_batch(rel)
    samples = batch_size  # read as 2 + 2 where MPII is mixed in: tiled to b + b * mix / paper
    if mix and getattr(dm, "mix_set", None) is not None:
        samples = round(batch_size * (1 + mix / paper))
    batch = ([_tile(b, samples) for b in batch] if isinstance(loaders, (list, tuple))  # batch_size per loader
             else _tile(batch, samples))

    class Repeat:  # an iterable, not a list (Lightning reads a list as several dataloaders)
        def __init__(self, b):
            self.b = b

        def __iter__(self):
            return iter([self.b] * total)

        def __len__(self):
            return total

    # the same tiled batch each step (workers' decode is not timed); several loaders stay several
    loader = [Repeat(b) for b in batch] if isinstance(loaders, (list, tuple)) else Repeat(batch)
    dm.train_dataloader = lambda: loader
    dm.setup = lambda stage=None: None

    wall: list[float] = []
    cpu: list[float] = []

    class StepTimer(Callback):
        def on_train_batch_start(self, trainer, pl_module, b, i):
            if device == "cuda":
                torch.cuda.synchronize()
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, trainer, pl_module, out, b, i):
            if device == "cuda":
                torch.cuda.synchronize()
            wall.append(time.perf_counter() - self.t0)
            cpu.append(time.process_time() - self.c0)
            timed = (wall if device == "cuda" else cpu)[warmup:]
            if len(timed) >= steps and sum(timed) >= min_time:
                trainer.should_stop = True

    cli.trainer.callbacks.append(StepTimer())
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    cli.trainer.fit(cli.model, datamodule=dm)
    mean = lambda xs: sum(xs[warmup:] or xs) / max(len(xs[warmup:] or xs), 1)  # noqa: E731
    peak = (torch.cuda.max_memory_allocated() if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"config": rel, "batch_size": batch_size, "samples": samples, "wall_s": mean(wall), "cpu_s": mean(cpu),
            "steps": len(wall[warmup:] or wall), "peak_gb": peak / 2**30,
            "params_m": sum(p.numel() for p in cli.model.parameters()) / 1e6}


def _child(cmd: list[str], timeout: float) -> tuple[str | None, str]:
    """(the child's RESULT/RUN line, or None; why not)."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return None, f"over {timeout:.0f} s"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("RESULT ", "RUN "))]
    if not lines:
        return None, "failed: " + (proc.stderr.strip().splitlines() or ["no output"])[-1][:120]
    return lines[-1], ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=2, help="timed steps per config")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--min-time", type=float, default=0.0,
                        help=f"time more steps (up to {MAX_STEPS}) until the timed ones add up to this many seconds: "
                             "fast configs' one-step figures are noisy")
    parser.add_argument("--max-batch", type=int, default=None,
                        help="above this batch size, measure at N/2 and N and fit a line to the paper batch "
                             "(default 16 on CPU, none on CUDA; 0: none)")
    parser.add_argument("--max-configs", type=int, default=None, help="stop after this many configs")
    parser.add_argument("--only", nargs="*", default=None, help="configs (relative to configs/) to measure")
    parser.add_argument("--timeout", type=float, default=900,
                        help="seconds per child process (one config at one batch size) before it is reported "
                             "as too slow")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown at the end too")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--upstream-run", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data-root", default=None, help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.upstream:  # child process: the run a later config reads
        root_dir = Path(a.data_root) / "upstream" / a.upstream.replace("/", "_")
        run_upstream(a.upstream, a.device, Path(a.data_root), root_dir)
        print(f"RUN {root_dir}", flush=True)
        return
    if a.one:  # child process: one config at one batch size, one JSON line
        r = measure(a.one, a.device, a.steps, a.warmup, Path(a.data_root), a.batch, a.upstream_run, a.min_time)
        print("RESULT " + json.dumps(r), flush=True)
        return
    max_batch = a.max_batch if a.max_batch is not None else (16 if a.device == "cpu" else None)
    max_batch = max_batch or None
    configs = a.only or paper_configs()
    configs = configs[:a.max_configs] if a.max_configs else configs
    time_col = "CPU s/step" if a.device == "cpu" else "s/step"
    print(f"{'config':40s} {'batch':>5s} {'params M':>8s} {time_col:>10s} {'wall s':>7s} {'peak GB':>7s}  "
          f"({a.device}{f', max batch {max_batch}' if max_batch else ''})", flush=True)
    rows = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        runs: dict[str, str] = {}
        for rel in configs:
            b, mix = paper_batch(rel)
            shown = f"{b}+{mix}" if mix else str(b)  # SSP-Net: the mixed-in MPII images on top
            base = [sys.executable, __file__, "--device", a.device, "--data-root", tmp]
            note, upstream_run = "", None
            chain = upstream_of(rel)
            if chain:
                if chain[0] not in runs:
                    line, why = _child([*base, "--upstream", chain[0]], a.timeout)
                    runs[chain[0]] = line[4:] if line else ""
                    if not line:
                        note = f"its upstream {chain[0]} {why}"
                upstream_run = runs[chain[0]] or None
            points = []
            if not note:
                for n in batch_sizes(b, max_batch):
                    line, why = _child([*base, "--one", rel, "--batch", str(n), "--steps", str(a.steps),
                                        "--warmup", str(a.warmup), "--min-time", str(a.min_time),
                                        *(["--upstream-run", upstream_run] if upstream_run else [])], a.timeout)
                    if not line:
                        note = f"at batch {n}: {why}"
                        break
                    points.append(json.loads(line[7:]))
            if note:
                rows.append({"config": rel, "batch": shown, "note": note})
                print(f"{rel:40s} {shown:>5s} {note}", flush=True)
                continue
            time_key = "cpu_s" if a.device == "cpu" else "wall_s"
            row = {"config": rel, "batch": shown, "params_m": points[-1]["params_m"],
                   "step_s": fit_line([(p["batch_size"], p[time_key]) for p in points], b),
                   "wall_s": fit_line([(p["batch_size"], p["wall_s"]) for p in points], b),
                   "peak_gb": fit_line([(p["batch_size"], p["peak_gb"]) for p in points], b),
                   "from": [p["batch_size"] for p in points] if len(points) > 1 else None}
            rows.append(row)
            how = f"est. from {', '.join(map(str, row['from']))}" if row["from"] else "measured"
            print(f"{rel:40s} {shown:>5s} {row['params_m']:8.1f} {row['step_s']:10.2f} {row['wall_s']:7.2f} "
                  f"{row['peak_gb']:7.2f}  {how}", flush=True)
    print(f"total {time.perf_counter() - start:.0f} s", flush=True)
    if a.markdown:
        dev = "CPU" if a.device == "cpu" else "GPU"
        print(f"\n| config | paper batch | params (M) | {dev} s/step | {dev} peak GB | at batch |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            if "note" in r:
                print(f"| {r['config']} | {r['batch']} | | {r['note']} | | |")
                continue
            how = f"est. from {', '.join(map(str, r['from']))}" if r["from"] else "measured"
            print(f"| {r['config']} | {r['batch']} | {r['params_m']:.1f} | {r['step_s']:.2f} | {r['peak_gb']:.1f} "
                  f"| {how} |")


if __name__ == "__main__":
    main()
