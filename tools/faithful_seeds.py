"""Run the papers' faithful checks over several seeds and print each measurement per seed and as mean ± std.

Every faithful test takes its seed from the ``faithful_seed`` fixture (``ZOO_FAITHFUL_SEED``, 0 in the suite) and
prints ``FAITHFUL <check> seed=<s> key=value ...`` before asserting; this script runs the tests once per seed (one
thread, as the suite) and collects those lines, so a margin can be set that every seed clears::

    python tools/faithful_seeds.py --seeds 0 1 2 3 4                      # every faithful test
    python tools/faithful_seeds.py --seeds 0 1 2 3 4 -k darts tests/zoo/nas/test_nas_faithful.py

Assertion failures of single seeds are expected while calibrating; the table is what matters.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^FAITHFUL (\S+) seed=(\d+) (.*)$")


def run_seed(seed: int, paths: list[str], keyword: str | None, log_dir: Path) -> list[str]:
    env = dict(os.environ, ZOO_FAITHFUL_SEED=str(seed), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-m", "faithful", "-p", "no:cacheprovider", "-p", "no:timeout", *paths]
    if keyword:
        cmd += ["-k", keyword]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    (log_dir / f"seed{seed}.log").write_text(proc.stdout + proc.stderr)
    tail = proc.stdout.strip().splitlines()[-1:] or ["(no output)"]
    print(f"seed {seed}: {tail[0]}", file=sys.stderr, flush=True)
    return [m.group(0) for m in map(LINE.match, proc.stdout.splitlines()) if m]


def table(lines: list[str]) -> str:
    rows: dict[str, dict[int, dict[str, float]]] = defaultdict(dict)
    for line in lines:
        check, seed, rest = LINE.match(line).groups()
        rows[check][int(seed)] = {k: float(v) for k, v in (kv.split("=") for kv in rest.split())}
    out = []
    for check, by_seed in sorted(rows.items()):
        keys = list(next(iter(by_seed.values())))
        out += [f"### {check}", "", "| seed | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for seed in sorted(by_seed):
            out.append(f"| {seed} | " + " | ".join(f"{by_seed[seed].get(k, float('nan')):.3f}" for k in keys) + " |")
        stats = []
        for k in keys:
            vals = [v[k] for v in by_seed.values() if k in v]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            stats.append(f"{statistics.mean(vals):.3f} ± {sd:.3f}")
        out += ["| mean ± std | " + " | ".join(stats) + " |", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="*", default=["tests"], help="test files or folders (default: all faithful tests)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("-k", dest="keyword", default=None, help="pytest -k expression")
    p.add_argument("--logs", type=Path, default=Path("/tmp/faithful_seeds"), help="per-seed pytest logs")
    args = p.parse_args(argv)
    args.logs.mkdir(parents=True, exist_ok=True)
    lines = [line for seed in args.seeds for line in run_seed(seed, args.paths, args.keyword, args.logs)]
    print(table(lines) if lines else "no FAITHFUL lines were printed (see the logs in " + str(args.logs) + ")")


if __name__ == "__main__":
    main()
