"""Measure what each shipped model's tiny command prints after ``zoo fit``, over seeds, and record it in its card.

For every model named, the card's ``recipe`` (zoo/weights/model_cards.json) is run once per seed with
``--seed_everything S`` added to each step, one process at a time on one CPU thread, each step in its own run
folder under ``--work``. A chain ``zoo fit A, then zoo fit B ...`` runs A, then B with every path under A's
``trainer.default_root_dir`` (as the docs write it, e.g. ``runs/darts_tiny/genotypes/genotype.json``) pointed at
A's run folder. The test metrics the last step prints after fit are read from its CSV log
(``<run>/csv/**/metrics.csv``); the checkpoint they come from is the one its ``ModelCheckpoint`` chose, read from
the config (``checkpoint.monitor``, else the zoo's default ``val/acc``) and the run's log ("Restoring states ...").

Printed: each seed's values, wall and CPU time, then mean ± std per metric. With ``--write`` the card's
``fit_printed`` becomes: command, seeds, values (per seed), mean, std, margin, checkpoint, tested (each seed's
checkpoint file), shipped_seed, shipped_dtype, wall_s, cpu_s, measured. ``shipped_seed`` is the seed whose run *is*
the shipped weights file (its tested checkpoint holds the file's tensors), else null. tools/model_table.py puts
``fit_printed`` in README.md; tests/test_readme.py checks a fresh run of each command against it.

Margin rule, per metric: ``margin = max(3 * std, max_i |value_i - mean|, floor)``, rounded up at the second
significant digit, where std is the sample standard deviation (n - 1) of the recorded (4-decimal) values over the
seeds and the floor is ``FLOOR[metric]``, else 0.01 for a proportion in [0, 1], else 3 % of |mean| (as for a
chamfer distance). A re-run, of any seed, on any CPU, is expected inside ``mean ± margin``: with 2-3 seeds the
std itself is uncertain, hence 3 std, and the largest deviation already seen bounds it from below.

    python tools/tiny_results.py quickstart_cnn kdl_digits --seeds 0 1 2            # print only
    python tools/tiny_results.py darts_digits --seeds 0 1 --write                   # and record in the card
    python tools/tiny_results.py --all --write                                      # every model with weights
    python tools/tiny_results.py rrrnet_tiny --export 0                             # ship seed 0's run's weights
    python tools/tiny_results.py --refresh-shipped                                  # after re-exporting weights
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# the metrics a row reports (the first is the card's headline); all are printed by the command's test after fit
METRICS: dict[str, tuple[str, ...]] = {
    "quickstart_cnn": ("test/acc",),
    "kdl_digits": ("test/acc",),
    "mrs_digits": ("test/acc", "test/robust_acc_fgsm", "test/robust_acc_pgd20"),
    "darts_digits": ("test/acc",),
    "ddarts_digits": ("test/acc",),
    "nasiam_digits": ("test/knn_acc", "test/knn_acc_embedding"),
    "rrrnet_tiny": ("test/acc",),
    "sspnet_synthetic": ("test/mpjpe", "test/pa_mpjpe"),
    "alphazzle_digits": ("test/frag_acc", "test/perfect", "test/neighbour_acc"),
    "meshrec_shapes": ("test/chamfer", "test/f1@0.3"),
}
FLOOR = {"test/mpjpe": 1.0, "test/pa_mpjpe": 1.0}  # millimetres
DISTANCES = {"test/chamfer"}  # in [0, 1] but not a proportion: its floor is relative
RESTORE = re.compile(r"Restoring states from the checkpoint path at (\S+)")


def steps(command: str) -> list[list[str]]:
    """The ``zoo`` argument lists of a recipe: ``zoo fit ...`` or ``zoo fit ..., then zoo fit ...``."""
    out = []
    for part in re.split(r",\s*then\s+", command.strip()):
        words = shlex.split(part)
        if words[:1] != ["zoo"]:
            raise ValueError(f"not a zoo command: {part!r} (in {command!r})")
        out.append(words[1:])
    return out


def _config(args: list[str]) -> dict[str, Any]:
    import yaml

    return yaml.safe_load((ROOT / args[args.index("--config") + 1]).read_text())


def run_root(args: list[str]) -> str:
    """The ``trainer.default_root_dir`` a step writes to without an override (the path later steps name)."""
    return str(_config(args).get("trainer", {}).get("default_root_dir") or "")


def monitored(args: list[str]) -> tuple[str | None, str]:
    """(monitor, mode) of a step's ModelCheckpoint: the config's ``checkpoint:``, else the zoo's default."""
    ckpt = _config(args).get("checkpoint") or {}
    return (ckpt["monitor"] if "monitor" in ckpt else "val/acc"), ckpt.get("mode", "max")


def printed_metrics(run: Path) -> dict[str, float]:
    """The last logged value of every ``test/`` key in the run's CSV log."""
    out: dict[str, float] = {}
    for path in sorted(run.glob("csv/**/metrics.csv"), key=lambda p: p.stat().st_mtime):
        with open(path) as fh:
            for row in csv.DictReader(fh):
                out.update({k: float(v) for k, v in row.items() if k and k.startswith("test/") and v not in ("", None)})
    return out


def run_once(name: str, command: str, seed: int | None, work: Path, timeout: float) -> dict[str, Any]:
    """Run ``command`` at ``seed`` (None: the configs' own ``seed_everything``, the command exactly as written); its
    last step's printed test metrics, the checkpoint they were tested on and the wall time."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", WANDB_SILENT="true", PYTHONUNBUFFERED="1")
    zoo = Path(sys.executable).parent / "zoo"
    exe = [str(zoo)] if zoo.exists() else [sys.executable, "-m", "zoo.cli"]
    renames: dict[str, str] = {}
    start, restored, run = time.perf_counter(), None, work
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    for i, args in enumerate(steps(command)):
        run = work / f"{name}-s{seed}-step{i + 1}"
        default = run_root(args)
        args = [next((a.replace(old, new, 1) for old, new in renames.items() if a.startswith(old + "/")), a)
                for a in args]
        seeded = [] if seed is None else ["--seed_everything", str(seed)]
        cmd = [*exe, *args, *seeded, "--trainer.default_root_dir", str(run)]
        with open(work / f"{run.name}.log", "w") as log:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
        text = (work / f"{run.name}.log").read_text()
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}); log: {work / f'{run.name}.log'}\n"
                               f"{text[-2000:]}")
        if default:
            renames[default.rstrip("/")] = str(run)
        found = RESTORE.findall(text)
        restored = found[-1] if found else None
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"seed": seed, "metrics": printed_metrics(run), "wall_s": round(time.perf_counter() - start, 1),
            "cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 1),
            "checkpoint": Path(restored).name if restored else None, "checkpoint_path": restored}


def _round_up(x: float, digits: int = 2) -> float:
    if x <= 0:
        return 0.0
    scale = 10 ** (math.floor(math.log10(x)) - digits + 1)
    return round(math.ceil(round(x / scale, 6)) * scale, 10)


def margin(metric: str, values: list[float]) -> float:
    """The module docstring's rule."""
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    proportion = 0.0 <= mean <= 1.0 and metric not in DISTANCES
    floor = FLOOR.get(metric, 0.01 if proportion else 0.03 * abs(mean))
    return _round_up(max(3 * std, max(abs(v - mean) for v in values), floor))


def checkpoint_text(command: str, runs: list[dict[str, Any]]) -> str:
    """Which checkpoint the printed test metrics come from, e.g. 'best val/acc (validation split), epochs 9, 4'."""
    monitor, mode = monitored(steps(command)[-1])
    if monitor is None:
        return "last epoch (the config monitors nothing)"
    epochs = [re.search(r"epoch(\d+)", r["checkpoint"] or "") for r in runs]
    shown = ", ".join(str(int(m.group(1))) if m else "?" for m in epochs)
    return f"best {monitor} ({mode}) on the validation split, epoch{'s' if len(runs) > 1 else ''} {shown}"


def same_weights(name: str, ckpt: Path) -> bool:
    """Whether the Lightning checkpoint ``ckpt`` holds the network of ``name``'s shipped weights file, tensor for
    tensor (cast to the file's dtype: some files are stored in float16)."""
    import torch

    import zoo
    from zoo import hub

    w = zoo.get_entry(name).weights
    shipped = hub.load_state(str(hub.PACKAGE_DIR / w.path), sha256=w.sha256)["state_dict"]
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    state = {k.removeprefix("net."): v for k, v in state.items()}
    return all(k in state and state[k].shape == v.shape and torch.equal(state[k].to(v.dtype), v)
               for k, v in shipped.items())


def shipped_seed(name: str, seeds: list[int], checkpoints: list[Path | None]) -> int | None:
    """The seed whose run *is* the shipped weights file: its tested checkpoint holds the file's tensors (cast to the
    file's dtype). None if no seed's run is (the file is an earlier run's, even where it scores the same)."""
    for seed, ckpt in zip(seeds, checkpoints):
        if ckpt is not None and Path(ckpt).is_file() and same_weights(name, Path(ckpt)):
            return seed
    return None


def shipped_dtype(name: str) -> str:
    """The floating dtype the shipped weights file stores (float16 keeps a file under the 2 MB limit)."""
    import zoo
    from zoo import hub

    w = zoo.get_entry(name).weights
    state = hub.load_state(str(hub.PACKAGE_DIR / w.path), sha256=w.sha256)["state_dict"]
    return str(next(v.dtype for v in state.values() if v.is_floating_point())).removeprefix("torch.")


def summarise(name: str, command: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = METRICS[name]
    missing = [(r["seed"], k) for r in runs for k in keys if k not in r["metrics"]]
    if missing:
        raise RuntimeError(f"{name}: the command printed no {missing} (printed: {sorted(runs[0]['metrics'])})")
    values = {k: [round(r["metrics"][k], 4) for r in runs] for k in keys}
    return {
        "command": command,
        "seeds": [r["seed"] for r in runs],
        "values": values,
        "mean": {k: round(statistics.mean(v), 4) for k, v in values.items()},
        "std": {k: round(statistics.stdev(v) if len(v) > 1 else 0.0, 4) for k, v in values.items()},
        "margin": {k: margin(k, v) for k, v in values.items()},
        "checkpoint": checkpoint_text(command, runs),
        "tested": [r["checkpoint"] for r in runs],
        "shipped_seed": shipped_seed(name, [r["seed"] for r in runs], [r.get("checkpoint_path") for r in runs]),
        "shipped_dtype": shipped_dtype(name),
        "wall_s": [r["wall_s"] for r in runs],
        "cpu_s": [r["cpu_s"] for r in runs],
        "measured": f"{datetime.date.today().isoformat()}, tools/tiny_results.py, one process at a time, 1 CPU thread",
    }


def report(name: str, fit: dict[str, Any]) -> str:
    seed = fit["shipped_seed"]
    lines = [f"## {name}: {fit['command']}", f"checkpoint: {fit['checkpoint']}",
             "shipped weights: " + (f"the seed-{seed} run ({fit['shipped_dtype']})" if seed is not None
                                    else "not a run of these seeds")]
    keys = list(fit["values"])
    lines.append("| seed | wall s | CPU s | " + " | ".join(keys) + " |")
    for i, seed in enumerate(fit["seeds"]):
        shown = " | ".join(f"{fit['values'][k][i]:.4g}" for k in keys)
        lines.append(f"| {seed} | {fit['wall_s'][i]} | {fit['cpu_s'][i]} | {shown} |")
    lines.append("| mean ± std (margin) | | | " + " | ".join(
        f"{fit['mean'][k]:.4g} ± {fit['std'][k]:.2g} ({fit['margin'][k]:.2g})" for k in keys) + " |")
    return "\n".join(lines)


def export_weights(name: str, seed: int, work: Path, out_path: Path | None = None) -> str:
    """Re-export ``name``'s shipped weights file from the checkpoint that seed ``seed``'s run (under ``work``) tested,
    in the old file's floating dtype; returns the new sha256 (to be written into the registry entry in
    zoo/<paper>/__init__.py, then ``python tools/model_cards.py`` and ``--refresh-shipped``).

    The metadata records the command, the seed, that checkpoint and the test metrics of the file itself: those the
    run printed for a float32 file; for a float16 one (kept under the 2 MB limit), those ``zoo test`` prints for the
    same checkpoint with its network rounded to float16, which is what ``zoo.load`` gives (the run's own float32
    numbers are kept under ``printed_by_fit``)."""
    import torch

    import zoo
    from zoo import hub
    from zoo.registry import unified_metrics

    card = json.loads((ROOT / "zoo" / "weights" / "model_cards.json").read_text())["models"][name]
    command = card["recipe"]
    run = work / f"{name}-s{seed}-step{len(steps(command))}"
    found = RESTORE.findall((work / f"{run.name}.log").read_text())
    if not found:
        raise RuntimeError(f"{run}: its log names no tested checkpoint")
    entry = zoo.get_entry(name)
    old = hub.load_state(str(hub.PACKAGE_DIR / entry.weights.path), sha256=entry.weights.sha256)
    printed = printed_metrics(run)
    keys = [*METRICS[name], *(k for k in unified_metrics(old["metadata"]) if k in printed and k not in METRICS[name])]
    half = {v.dtype for v in old["state_dict"].values() if v.is_floating_point()} == {torch.float16}
    ckpt = torch.load(found[-1], map_location="cpu", weights_only=True)
    net = entry.builder(**old["arch_kwargs"])  # as hub.export_checkpoint builds it
    net.load_state_dict({k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")})
    metadata = {
        "config": old["metadata"].get("config") or card["config"],
        "dataset": old["metadata"].get("dataset"),
        "command": command,
        "seed": seed,
        "checkpoint": f"{checkpoint_text(command, [{'checkpoint': Path(found[-1]).name}])}, the seed-{seed} run of the "
                      "command" + (", stored in float16" if half else ""),
    }
    if half:
        net = net.half()
        if len(steps(command)) != 1:
            raise NotImplementedError("a float16 re-export re-tests single-step commands only")
        rounded = dict(ckpt, state_dict={k: (v.half().float() if k.startswith("net.") and v.is_floating_point() else v)
                                         for k, v in ckpt["state_dict"].items()})
        test_dir = work / f"{name}-s{seed}-float16-test"
        test_dir.mkdir(parents=True, exist_ok=True)
        torch.save(rounded, test_dir / "float16.ckpt")
        args = [a for a in steps(command)[0] if a != "fit"]
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", WANDB_SILENT="true")
        subprocess.run([str(Path(sys.executable).parent / "zoo"), "test", *args,
                        "--ckpt_path", str(test_dir / "float16.ckpt"), "--seed_everything", str(seed),
                        "--trainer.default_root_dir", str(test_dir)],
                       cwd=ROOT, env=env, check=True, capture_output=True)
        tested = printed_metrics(test_dir)
        metadata.update(dtype="float16", printed_by_fit={k: round(printed[k], 4) for k in keys})
        metadata["metrics"] = {k: round(tested[k], 4) for k in keys}
    else:
        metadata["metrics"] = {k: round(printed[k], 4) for k in keys}
    out = out_path or hub.PACKAGE_DIR / entry.weights.path
    sha = hub.save_weights(net, out, arch=name, arch_kwargs=old["arch_kwargs"], metadata=metadata)
    print(f"{name}: wrote {out} from {found[-1]}\n  sha256 {sha}\n  metadata {metadata}")
    return sha


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="registered models with weights (see --all)")
    parser.add_argument("--all", action="store_true", help="every model with a METRICS entry")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=Path("/tmp/tiny_results"), help="run folders and logs (kept)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per step")
    parser.add_argument("--write", action="store_true", help="store the results in zoo/weights/model_cards.json")
    parser.add_argument("--refresh-shipped", action="store_true",
                        help="run nothing: recompute the cards' fit_printed.shipped_seed (after re-exporting weights)")
    parser.add_argument("--export", type=int, metavar="SEED",
                        help="run nothing: re-export the named models' shipped weights from that seed's run in --work")
    args = parser.parse_args(argv)
    from zoo.registry import CARDS_PATH

    if args.export is not None:
        for name in args.names:
            export_weights(name, args.export, args.work)
        return 0

    if args.refresh_shipped:  # the runs' logs and checkpoints are still under --work
        data = json.loads(CARDS_PATH.read_text())
        for name, card in data["models"].items():
            fit = card.get("fit_printed")
            if fit and name in METRICS and "values" in fit:
                last = len(steps(fit["command"]))
                ckpts = []
                for seed in fit["seeds"]:  # the checkpoint each run's test restored, from its log
                    log = args.work / f"{name}-s{seed}-step{last}.log"
                    found = RESTORE.findall(log.read_text()) if log.is_file() else []
                    ckpts.append(Path(found[-1]) if found else None)
                fit["tested"] = [c.name if c else None for c in ckpts]
                fit["shipped_seed"] = shipped_seed(name, fit["seeds"], ckpts)
                fit["shipped_dtype"] = shipped_dtype(name)
                print(f"{name}: shipped weights = the seed-{fit['shipped_seed']} run")
        CARDS_PATH.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
        return 0

    names = list(METRICS) if args.all else args.names
    unknown = [n for n in names if n not in METRICS]
    if not names or unknown:
        parser.error(f"name models from {sorted(METRICS)} (unknown: {unknown})")
    args.work.mkdir(parents=True, exist_ok=True)
    for name in names:
        card = json.loads(CARDS_PATH.read_text())["models"][name]
        command = card["recipe"]
        runs = []
        for seed in args.seeds:
            print(f"{name} seed {seed}: {command}", flush=True)
            runs.append(run_once(name, command, seed, args.work, args.timeout))
            shown = ", ".join(f"{k} {runs[-1]['metrics'].get(k, float('nan')):.4g}" for k in METRICS[name])
            last = runs[-1]
            print(f"  {last['wall_s']} s wall, {last['cpu_s']} s CPU: {shown} ({last['checkpoint']})", flush=True)
        fit = summarise(name, command, runs)
        print(report(name, fit), flush=True)
        if args.write:  # re-read: another name of this invocation may have been written meanwhile
            data = json.loads(CARDS_PATH.read_text())
            data["models"][name]["fit_printed"] = fit
            CARDS_PATH.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
            print(f"  wrote {name}'s fit_printed to {CARDS_PATH}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
