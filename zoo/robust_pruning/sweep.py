"""Sweep the MRS paper grid (datasets x archs x sparsity x allocation x criterion x fine-tuning) and tabulate.

Writes one merged LightningCLI config per run under ``--root``, runs ``zoo fit`` on each (dense PGD-AT
pre-training first when its checkpoint is missing) and collects clean / FGSM / PGD-20 / CW-inf / AutoAttack
accuracy, parameters and MACs into one Markdown table. ``--dry-run`` only writes configs and prints commands.

    python -m zoo.robust_pruning.sweep --datasets cifar10 --archs resnet18 vgg16_bn --root runs/mrs --out results.md
"""
from __future__ import annotations

import argparse
import copy
import csv
import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "robust_pruning"
COLUMNS = [("test/acc", "clean"), ("test/robust_acc_fgsm", "FGSM"), ("test/robust_acc_pgd20", "PGD-20"),
           ("test/robust_acc_cw30", "CW-inf"), ("test/robust_acc_aa", "AA")]


def merge(base: dict, over: dict) -> dict:
    """Deep merge of config dicts (lists are replaced, as LightningCLI does)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def dense_config(dataset: str, arch: str, root: Path) -> tuple[dict, Path]:
    cfg = merge(merge(load(CONFIGS / "dense.yaml"), load(CONFIGS / "data" / f"{dataset}.yaml")),
                load(CONFIGS / "arch" / f"{arch}.yaml"))
    run = root / f"dense_{dataset}_{arch}"
    cfg["trainer"]["default_root_dir"] = str(run)
    return cfg, run / "checkpoints" / "last.ckpt"


def prune_config(dataset: str, arch: str, sparsity: float, policy: str, criterion: str, finetune: str,
                 dense_ckpt: Path, root: Path) -> tuple[dict, Path]:
    cfg = merge(merge(load(CONFIGS / "paper.yaml"), load(CONFIGS / "data" / f"{dataset}.yaml")),
                load(CONFIGS / "arch" / f"{arch}.yaml"))
    name = f"{dataset}_{arch}_s{int(round(sparsity * 100))}_{policy}_{criterion}_{finetune}"
    run = root / name
    cfg["trainer"]["default_root_dir"] = str(run)
    cfg["model"]["init_args"].update(init_weights=str(dense_ckpt), finetune_loss=finetune)
    prune = cfg["trainer"]["callbacks"][0]["init_args"]
    prune.update(sparsity=sparsity, criterion=criterion)
    if policy == "uniform":
        prune["ratio_policy"] = "uniform"
    if sparsity >= 0.85 and policy == "mrs":  # bounded rule needs room above p_u (spec 3.3)
        prune["ratio_policy"]["init_args"]["p_max"] = 0.95
    return cfg, run


def metrics(run: Path) -> dict[str, float]:
    """Last value of every column in the run's CSV logs."""
    out: dict[str, float] = {}
    for f in sorted(run.glob("csv/**/metrics.csv"), key=lambda p: p.stat().st_mtime):
        with open(f) as fh:
            for row in csv.DictReader(fh):
                out.update({k: float(v) for k, v in row.items() if v not in ("", None)})
    return out


def apply_sets(cfg: dict, sets: list[str]) -> dict:
    """``key.sub=value`` overrides (value parsed as YAML) applied to a config dict."""
    cfg = copy.deepcopy(cfg)
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:  # integers index lists (trainer.callbacks.0.init_args...)
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(leaf)] = yaml.safe_load(value)
        else:
            node[leaf] = yaml.safe_load(value)
    return cfg


def zoo_fit(cfg: dict, path: Path, dry: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    exe = shutil.which("zoo") or str(Path(sys.executable).with_name("zoo"))
    cmd = [exe, "fit", "--config", str(path)]
    print(" ".join(cmd), flush=True)
    if not dry:
        subprocess.run(cmd, check=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["cifar10", "cifar100", "svhn", "tiny_imagenet"])
    ap.add_argument("--archs", nargs="+", default=["resnet18", "vgg16_bn"])
    ap.add_argument("--sparsities", nargs="+", type=float, default=[0.5, 0.7, 0.9])
    ap.add_argument("--policies", nargs="+", default=["uniform", "mrs"])
    ap.add_argument("--criteria", nargs="+", default=["l1", "random"])
    ap.add_argument("--finetune", nargs="+", default=["trades", "natural"])
    ap.add_argument("--root", default="runs/mrs")
    ap.add_argument("--out", default="runs/mrs/results.md")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="config overrides for every run, e.g. trainer.max_epochs=1 data.init_args.data_dir=/data/c10")
    ap.add_argument("--set-prune", nargs="*", default=[], metavar="KEY=VALUE",
                    help="overrides for the pruning runs only, e.g. trainer.callbacks.0.init_args.min_channels=4")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    root = Path(args.root)
    rows = []
    for dataset, arch in itertools.product(args.datasets, args.archs):
        dense_cfg, dense_ckpt = dense_config(dataset, arch, root)
        if not dense_ckpt.is_file():
            zoo_fit(apply_sets(dense_cfg, args.set), root / "configs" / f"dense_{dataset}_{arch}.yaml", args.dry_run)
        for s, pol, crit, ft in itertools.product(args.sparsities, args.policies, args.criteria, args.finetune):
            cfg, run = prune_config(dataset, arch, s, pol, crit, ft, dense_ckpt, root)
            zoo_fit(apply_sets(cfg, args.set + args.set_prune), root / "configs" / f"{run.name}.yaml", args.dry_run)
            m = {} if args.dry_run else metrics(run)
            rows.append([dataset, arch, f"{s:.0%}", pol, crit, ft]
                        + [f"{100 * m[k]:.1f}" if k in m else "-" for k, _ in COLUMNS]
                        + [f"{m['model/params'] / 1e6:.2f} M" if "model/params" in m else "-",
                           f"{m['model/macs'] / 1e6:.0f} M" if "model/macs" in m else "-"])
    head = ["dataset", "arch", "sparsity", "allocation", "criterion", "fine-tune"] + [c for _, c in COLUMNS] + ["params", "MACs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
