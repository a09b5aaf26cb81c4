"""Cost of one training step of each paper config at its paper batch size: seconds per step and peak memory, so a
user can size a machine before renting it (issue 13.5).

Each config runs in its own process through the zoo's CLI (``ZooCLI``, ``run=False``) with its real network and
input size. One real batch is read at batch size 2 from the datamodule (tiny copies of each dataset's real format
from ``tests/fixtures_formats.py``, or ``--data-root`` files where a config's own paths exist), tiled to the
config's batch size before the device transfer, so the datamodule's on-device transforms and the module's own
training step (automatic or manual optimisation) run as in training. The first ``--warmup`` steps are not timed.
Memory: peak resident set of the process on CPU (includes Python and torch, about 0.4 GB), peak allocated on CUDA.

    python benchmarks/paper_configs.py --max-configs 5              # CPU, the first five configs
    python benchmarks/paper_configs.py --device cuda                # every paper config on the GPU
    python benchmarks/paper_configs.py --only kdl/paper.yaml --steps 5
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


def measure(rel: str, device: str, steps: int, warmup: int, data_root: Path) -> dict:
    """Time ``steps`` training steps of ``configs/<rel>`` at its batch size, in this process."""
    import torch
    from lightning.pytorch import Callback, LightningDataModule, LightningModule

    import fixtures_formats
    from test_paper_configs import _merged, data_target
    from zoo.cli import ZooCLI

    cfg = _merged([ROOT / "configs" / rel])
    prefix, class_path, init = data_target(cfg)
    batch_size = int(init.get("batch_size", 2))
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
             "--checkpoint.monitor", "null", "--checkpoint.save_last", "false",
             "--trainer.default_root_dir", str(data_root / "runs" / rel.replace("/", "_")),
             "--trainer.limit_val_batches", "0", "--trainer.max_epochs", "1",
             "--trainer.max_steps", str(steps + warmup), "--trainer.callbacks", "[]"]
    cli = ZooCLI(LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                 parser_kwargs={"allow_abbrev": False}, args=[*args, f"--{prefix}.batch_size", "2"], run=False,
                 save_config_callback=None)
    dm = cli.datamodule
    dm.prepare_data()
    dm.setup("fit")
    batch = _tile(next(iter(dm.train_dataloader())), batch_size)
    class Repeat:  # an iterable, not a list (Lightning reads a list as several dataloaders)
        def __iter__(self):
            return iter([batch] * (steps + warmup))

        def __len__(self):
            return steps + warmup

    loader = Repeat()
    dm.train_dataloader = lambda: loader  # the same tiled batch each step (workers' decode is not timed)
    dm.setup = lambda stage=None: None

    times: list[float] = []

    class StepTimer(Callback):
        def on_train_batch_start(self, trainer, pl_module, b, i):
            if device == "cuda":
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, out, b, i):
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t0)

    cli.trainer.callbacks.append(StepTimer())
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    cli.trainer.fit(cli.model, datamodule=dm)
    timed = times[warmup:] or times
    peak = (torch.cuda.max_memory_allocated() if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"config": rel, "batch_size": batch_size, "step_s": sum(timed) / max(len(timed), 1),
            "steps": len(timed), "peak_gb": peak / 2**30,
            "params_m": sum(p.numel() for p in cli.model.parameters()) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=2, help="timed steps per config")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--max-configs", type=int, default=None, help="stop after this many configs")
    parser.add_argument("--only", nargs="*", default=None, help="configs (relative to configs/) to measure")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per config before it is reported as too slow")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data-root", default=None, help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.one:  # child process: one config, one JSON line
        print("RESULT " + json.dumps(measure(a.one, a.device, a.steps, a.warmup, Path(a.data_root))), flush=True)
        return
    configs = a.only or paper_configs()
    configs = configs[:a.max_configs] if a.max_configs else configs
    print(f"{'config':42s} {'batch':>5s} {'params (M)':>10s} {'s/step':>8s} {'peak GB':>8s}  ({a.device})")
    with tempfile.TemporaryDirectory() as tmp:
        for rel in configs:
            cmd = [sys.executable, __file__, "--one", rel, "--device", a.device, "--steps", str(a.steps),
                   "--warmup", str(a.warmup), "--data-root", tmp]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout, cwd=ROOT)
            except subprocess.TimeoutExpired:
                print(f"{rel:42s} over {a.timeout:.0f} s", flush=True)
                continue
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if not lines:
                err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                print(f"{rel:42s} failed: {err[:120]}", flush=True)
                continue
            r = json.loads(lines[-1][7:])
            print(f"{rel:42s} {r['batch_size']:5d} {r['params_m']:10.1f} {r['step_s']:8.2f} {r['peak_gb']:8.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
