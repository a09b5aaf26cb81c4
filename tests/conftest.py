"""Shared fixtures: per-test thread and seed isolation, the faithful checks' seed, the ``zoo`` console script, and
the quickstart run and tiny-config runs reused by several tests."""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


TEST_THREADS = int(os.environ.get("ZOO_TEST_THREADS", "1"))
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # child processes (zoo runs, DDP ranks, notebook kernels) too
    os.environ.setdefault(_var, str(TEST_THREADS))
torch.set_num_threads(TEST_THREADS)  # module- and session-scoped fixtures run before the per-test fixture below


@pytest.fixture(autouse=True)
def _isolated_threads_and_seed():
    """Every test starts with the same torch thread count and the same global seeds, and gives the thread count
    back, so its outcome depends neither on the machine's load nor on the tests that ran before it in the session.

    One thread by default: the suite runs two workers on two cores (``make test``), and oversubscribed small
    convolutions ran 10-250x slower here. ``ZOO_TEST_THREADS`` overrides it.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(TEST_THREADS)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def faithful_seed() -> int:
    """The seed a faithful check runs: 0 in the suite; ``tools/faithful_seeds.py`` sets ``ZOO_FAITHFUL_SEED`` to run
    the same check over several seeds and calibrate its margins (each test asserts only what every seed cleared)."""
    return int(os.environ.get("ZOO_FAITHFUL_SEED", "0"))


def faithful_report(check: str, seed: int, **values: float) -> None:
    """Print one machine-readable line of a faithful check's measurements (read by ``tools/faithful_seeds.py``);
    with ``ZOO_FAITHFUL_LOG`` set, also append it to that file (to compare a full-suite run with a run alone)."""
    line = f"FAITHFUL {check} seed={seed} " + " ".join(f"{k}={float(v):.4f}" for k, v in values.items())
    print("\n" + line, flush=True)
    if os.environ.get("ZOO_FAITHFUL_LOG"):
        with open(os.environ["ZOO_FAITHFUL_LOG"], "a") as fh:
            fh.write(line + "\n")


def zoo_command() -> list[str]:
    script = Path(sys.executable).parent / "zoo"
    return [str(script)] if script.exists() else [sys.executable, "-m", "zoo.cli"]


def subprocess_env(threads: int | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ, WANDB_SILENT="true", PYTHONUNBUFFERED="1", **extra)
    threads = TEST_THREADS if threads is None else threads  # a child process gets the test's thread budget
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def run_zoo(args: list[str], *, cwd: Path = ROOT, timeout: float = 300, threads: int | None = None,
            check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """Run ``zoo <args>`` and return the finished process (stdout and stderr captured as text)."""
    proc = subprocess.run([*zoo_command(), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=subprocess_env(threads, **env))
    if check and proc.returncode != 0:
        raise AssertionError(f"zoo {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


DDP_EPILOGUE = """
import torch.distributed as _dist
if _dist.is_available() and _dist.is_initialized():  # an open gloo group can abort the interpreter at exit (-6)
    _dist.destroy_process_group()
"""


def run_ddp_script(code: str, tmp_path: Path, *, timeout: float, **env: str) -> subprocess.CompletedProcess:
    """Write ``code`` to ``tmp_path/run.py`` and run it (Lightning starts the second CPU rank by re-running the
    file); one thread per process, the process group closed before exit; fails with the job's stderr."""
    script = tmp_path / "run.py"
    script.write_text(code + DDP_EPILOGUE)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=timeout, env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                                                "PATH": "/usr/bin:/bin", "WANDB_SILENT": "true", **env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def last_metric(csv_dir: Path, name: str) -> float:
    """Last non-empty value of column ``name`` in a CSVLogger ``metrics.csv`` under ``csv_dir``."""
    import csv

    files = sorted(csv_dir.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    assert files, f"no metrics.csv under {csv_dir}"
    with open(files[-1]) as fh:
        values = [row[name] for row in csv.DictReader(fh) if row.get(name)]
    assert values, f"{name} never logged in {files[-1]}"
    return float(values[-1])


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory) -> Path:
    """``zoo fit --config configs/quickstart.yaml`` once, in a temporary run folder."""
    root = tmp_path_factory.mktemp("quickstart")
    run_zoo(["fit", "--config", str(QUICKSTART), "--trainer.default_root_dir", str(root)], timeout=600)
    return root


@pytest.fixture(scope="session")
def tiny_fit(tmp_path_factory):
    """``tiny_fit(config)``: ``zoo fit --config <config>`` at the config's own settings (one thread), run once per
    session and shared by the tests that read it; returns its run folder. Under xdist a session fixture is per
    worker, so the tests sharing a run carry the same ``@pytest.mark.xdist_group``."""
    runs: dict[str, Path] = {}

    def fit(config: str) -> Path:
        if config not in runs:
            root = tmp_path_factory.mktemp(Path(config).with_suffix("").as_posix().replace("/", "_"))
            run_zoo(["fit", "--config", config, "--trainer.default_root_dir", str(root)], threads=1, timeout=600)
            runs[config] = root
        return runs[config]

    return fit


_ROOT_ENTRIES_AT_START: set[str] = set()


def pytest_sessionstart(session) -> None:
    _ROOT_ENTRIES_AT_START.update(p.name for p in ROOT.iterdir())


def pytest_sessionfinish(session, exitstatus) -> None:
    """Fail the run if a test wrote into the repository root (tests must write under tmp_path)."""
    if not _ROOT_ENTRIES_AT_START or hasattr(session.config, "workerinput"):
        return
    new = sorted(p.name for p in ROOT.iterdir() if p.name not in _ROOT_ENTRIES_AT_START)
    new = [n for n in new if n not in {".pytest_cache", "__pycache__"}]
    if new:
        print(f"\nERROR: tests wrote into the repository root: {new}; write under tmp_path instead")
        session.exitstatus = 1
