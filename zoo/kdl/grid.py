"""Run the papers' grid (dataset x layer variant x seed) with ``zoo fit`` and write one mean +- std table.

``python -m zoo.kdl.grid --datasets mnist cifar10 rafdb --variants all --seeds 0 1 2 --out kdl_grid.md``
Each run is ``zoo fit --config configs/kdl/<dataset>.yaml --config configs/kdl/variants/<variant>.yaml``
in its own folder; finished runs (a ``test/acc`` in their CSV log) are reused, so the grid resumes.
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

from zoo.kdl.study import format_table, summarise

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "kdl"
DATASETS = {"digits": "tiny.yaml", "mnist": "mnist.yaml", "fashion_mnist": "fashion_mnist.yaml",
            "cifar10": "cifar10.yaml", "rafdb": "rafdb.yaml", "fer2013": "fer2013.yaml", "expw": "expw.yaml"}
METRICS = ("test_acc", "test_mean_class_acc", "train_acc", "gap")


def variants() -> list[str]:
    """Every layer variant under ``configs/kdl/variants`` (``fc_linear`` first: the baseline)."""
    names = sorted(p.stem for p in (CONFIG_DIR / "variants").glob("*.yaml"))
    return ["fc_linear", *(n for n in names if n != "fc_linear")]


def read_run(run_dir: Path) -> dict[str, float] | None:
    """Final metrics of one finished run from its CSVLogger file, or None when it has no ``test/acc`` yet."""
    files = sorted(run_dir.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    if not files:
        return None
    with open(files[-1]) as fh:
        rows = list(csv.DictReader(fh))

    def last(key: str) -> float | None:
        values = [r[key] for r in rows if r.get(key)]
        return float(values[-1]) if values else None

    if last("test/acc") is None:
        return None
    return {"test_acc": last("test/acc"), "test_mean_class_acc": last("test/mean_class_acc"),
            "train_acc": last("train/acc"), "gap": last("gap/train_minus_val_acc")}


def fit_command(dataset: str, variant: str, seed: int, run_dir: Path, extra: list[str]) -> list[str]:
    script = Path(sys.executable).parent / "zoo"
    zoo = [str(script)] if script.exists() else [sys.executable, "-m", "zoo.cli"]
    return [*zoo, "fit", "--config", str(CONFIG_DIR / DATASETS[dataset]),
            "--config", str(CONFIG_DIR / "variants" / f"{variant}.yaml"), "--seed_everything", str(seed),
            "--trainer.default_root_dir", str(run_dir), *extra]


def run_grid(datasets: list[str], variant_names: list[str], seeds: list[int], root: Path, extra: list[str],
             dry_run: bool = False) -> list[dict[str, Any]]:
    """Run (or reuse) every run of the grid; one row of final metrics per run."""
    rows = []
    for dataset in datasets:
        for variant in variant_names:
            for seed in seeds:
                run_dir = root / dataset / variant / f"seed{seed}"
                result = read_run(run_dir)
                if result is None:
                    cmd = fit_command(dataset, variant, seed, run_dir, extra)
                    print(" ".join(cmd), flush=True)
                    if dry_run:
                        continue
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                    if proc.returncode != 0:
                        raise RuntimeError(f"run {dataset}/{variant}/seed{seed} failed:\n{proc.stderr[-3000:]}")
                    result = read_run(run_dir)
                    if result is None:
                        raise RuntimeError(f"run {run_dir} finished without logging test/acc")
                rows.append({"dataset": dataset, "variant": variant, "seed": seed, **result})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion_mnist", "cifar10", "rafdb", "fer2013",
                                                          "expw"], choices=list(DATASETS))
    parser.add_argument("--variants", nargs="+", default=["all"], help=f"'all' or some of {variants()}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--root", default="runs/kdl_grid", help="one sub-folder per run")
    parser.add_argument("--out", default="runs/kdl_grid/results.md", help="the markdown results table")
    parser.add_argument("--dry-run", action="store_true", help="print the zoo fit commands only")
    args, extra = parser.parse_known_args(argv)  # anything else goes to every `zoo fit`, e.g. --trainer.devices 4
    names = variants() if args.variants == ["all"] else args.variants
    unknown = sorted(set(names) - set(variants()))
    if unknown:
        parser.error(f"unknown variants {unknown}; available: {variants()}")
    rows = run_grid(args.datasets, names, args.seeds, Path(args.root), extra, args.dry_run)
    if args.dry_run:
        return
    table = format_table(summarise(rows, METRICS), METRICS)
    print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
