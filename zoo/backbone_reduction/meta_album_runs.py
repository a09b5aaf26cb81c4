"""RRR-Net main experiment driver: 40 Meta-Album Micro datasets x 3 seeds x 4 methods through ``zoo fit``,
then one results table (CSV) and a plot.

    python -m zoo.backbone_reduction.meta_album_runs run --data-root data/meta_album --out runs/rrrnet_meta_album
    python -m zoo.backbone_reduction.meta_album_runs collect --out runs/rrrnet_meta_album
"""
from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

METHODS = ("a", "b", "c", "d")
SEEDS = (21, 31, 51)  # the authors' seeds; their code seeds everything with seed + 4
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "backbone_reduction"


def zoo_executable() -> list[str]:
    script = Path(sys.executable).parent / "zoo"
    return [str(script)] if script.exists() else [sys.executable, "-m", "zoo.cli"]


def run_dir(out: Path, method: str, code: str, seed: int) -> Path:
    return out / f"method_{method}" / code / f"seed{seed}"


def commands(data_root: str, out: Path, methods=METHODS, seeds=SEEDS, codes=None, extra: list[str] | None = None,
             count_classes: bool = True) -> list[tuple[Path, list[str]]]:
    """``(run folder, argv)`` of every run; ``num_classes`` is read from each dataset's ``labels.csv``."""
    from datamodules.meta_album import MICRO_CODES, micro_dataset_dir, read_meta_album

    runs = []
    for code in codes or MICRO_CODES:
        n_cls = len(read_meta_album(micro_dataset_dir(data_root, code))[2]) if count_classes else 20
        for method in methods:
            for seed in seeds:
                folder = run_dir(out, method, code, seed)
                argv = [*zoo_executable(), "fit", "--config", str(CONFIG_DIR / f"paper_{method}.yaml"),
                        "--seed_everything", str(seed + 4), "--trainer.default_root_dir", str(folder),
                        "--model.init_args.num_classes", str(n_cls), "--model.init_args.slice_seed", str(seed),
                        "--data.init_args.data_dir", data_root, "--data.init_args.dataset", code, *(extra or [])]
                runs.append((folder, argv))
    return runs


def final_test_acc(folder: Path) -> dict[str, float] | None:
    """Last ``test/acc`` (and mean single-branch accuracy) logged by the CSV logger of one run, if finished."""
    files = sorted(folder.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    if not files:
        return None
    acc, branch = None, None
    with open(files[-1]) as fh:
        for row in csv.DictReader(fh):
            if row.get("test/acc"):
                acc = float(row["test/acc"])
                branch = float(row["test/acc_branch_mean"]) if row.get("test/acc_branch_mean") else None
    return None if acc is None else {"test_acc": acc, "test_acc_branch_mean": branch}


def collect(out: Path) -> Path:
    """Write ``results.csv`` (one row per run), ``summary.csv`` (mean/std over seeds) and ``results.png``."""
    rows = []
    for folder in sorted(out.glob("method_*/*/seed*")):
        res = final_test_acc(folder)
        if res is not None:
            rows.append({"method": folder.parts[-3].removeprefix("method_").upper(), "dataset": folder.parts[-2],
                         "seed": int(folder.name.removeprefix("seed")), **res})
    if not rows:
        raise FileNotFoundError(f"no finished runs (csv/**/metrics.csv with test/acc) under {out}/method_*/<code>/seed*")
    with open(out / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    methods = sorted({r["method"] for r in rows})
    datasets = sorted({r["dataset"] for r in rows})
    with open(out / "summary.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["dataset", *(f"{m}_{s}" for m in methods for s in ("mean", "std", "n"))])
        for d in datasets + ["ALL"]:
            cells = []
            for m in methods:
                accs = [r["test_acc"] for r in rows if r["method"] == m and d in (r["dataset"], "ALL")]
                cells += [f"{statistics.fmean(accs):.4f}" if accs else "",
                          f"{statistics.stdev(accs):.4f}" if len(accs) > 1 else "", len(accs)]
            writer.writerow([d, *cells])
    _plot(rows, methods, out / "results.png")
    return out / "results.csv"


def _plot(rows: list[dict], methods: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    data = [[r["test_acc"] for r in rows if r["method"] == m] for m in methods]
    ax.boxplot(data)
    ax.set_xticks(range(1, len(methods) + 1), [f"[{m}]" for m in methods])
    ax.set_ylabel("test accuracy (per dataset and seed)")
    ax.set_title("RRR-Net on Meta-Album Micro")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run every missing (dataset, seed, method) then collect")
    run.add_argument("--data-root", required=True, help="folder holding Set0_Micro/ ... Set3_Micro/")
    run.add_argument("--out", default="runs/rrrnet_meta_album")
    run.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    run.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    run.add_argument("--datasets", nargs="+", default=None, help="Micro codes (default: all 40)")
    run.add_argument("--dry-run", action="store_true", help="print the commands only")
    col = sub.add_parser("collect", help="gather finished runs into results.csv, summary.csv and results.png")
    col.add_argument("--out", default="runs/rrrnet_meta_album")
    args, extra = parser.parse_known_args(argv)
    out = Path(args.out)
    if args.cmd == "run":
        for folder, cmd in commands(args.data_root, out, args.methods, args.seeds, args.datasets, extra):
            if args.dry_run:
                print(" ".join(cmd))
                continue
            if final_test_acc(folder) is not None:
                continue  # finished earlier: the loop can be resumed
            shutil.rmtree(folder, ignore_errors=True)
            subprocess.run(cmd, check=True)
        if args.dry_run:
            return
    print(f"results: {collect(out)}")


if __name__ == "__main__":
    main()
