"""Every config under configs/ runs ``fit`` for two steps and ``test`` on CPU at its real network and input size, on a
tiny copy of its dataset's real format. The same fit under bf16 autocast (validating too where evaluation runs layers
of its own: MCTS evaluators, mesh metrics) gives finite losses from layers that really return bfloat16. Every
checkpoint an fp32 run writes reloads in a separate process with ``load_from_checkpoint(weights_only=True)`` and
``zoo.load``, and is then deleted (issues 13.1, 13.2, 19.1).

Cases are found by globbing: each full config alone, each overlay after the first composition its header names
(``# composes with:``; every composition is parsed in tests/test_overlays.py), and each chain below, whose second
step reads what the first one wrote. Only hardware, batch sizes, workers and run length change on the command line
(the data paths point at the copies). Runs are in-process, through ``ZooCLI`` itself, with the logger off.
"""
from __future__ import annotations

import importlib
import inspect
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch import Callback

import fixtures_formats
from tests.conftest import ROOT
from tests.test_overlays import composes_with, is_overlay

# in `make test`. Disk: each fp32 run's checkpoints (about 0.3 GB at real size) are reloaded in a fresh process
# right after the run and then deleted, except those a later chain step reads; bf16 runs write none. Time: each
# paper family is one xdist group (its chains share the _RUNS cache), so the two workers share the families
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:LightningCLI.s args parameter")]
CONFIGS = ROOT / "configs"
HARDWARE_OVERLAYS = {"trainer"}  # configs/trainer/*: hardware only, replaced by this test's own hardware flags
# step two of a pipeline -> (step one, the flags that point step two at what step one wrote; {run} = its folder)
CHAINS = {
    "darts/paper_eval.yaml": ("darts/paper.yaml", ["--model.init_args.genotype", "{run}/genotypes/genotype.json"]),
    "d_darts/paper_eval.yaml": ("d_darts/paper.yaml", ["--model.init_args.genotype", "{run}/genotypes/genotype.json"]),
    "nasiam/linear_simsiam.yaml": ("nasiam/pretrain_simsiam.yaml", ["--model.init_args.source", "{run}"]),
    "nasiam/linear_moco.yaml": ("nasiam/pretrain_moco.yaml", ["--model.init_args.source", "{run}"]),
    "nasiam/linear_simclr.yaml": ("nasiam/pretrain_simclr.yaml", ["--model.init_args.source", "{run}"]),
    "nasiam/linear_imagenet.yaml": ("nasiam/pretrain_simsiam_imagenet.yaml", ["--model.init_args.source", "{run}"]),
    "robust_pruning/paper.yaml": ("robust_pruning/dense.yaml",
                                  ["--model.init_args.init_weights", "{run}/checkpoints/last.ckpt"]),
    "nasiam/pretrain_moco_imagenet.yaml": ("nasiam/search_moco_imagenet.yaml",
                                           ["--model.init_args.head", "{run}/genotypes/genotype.json"]),
    "nasiam/pretrain_simclr_imagenet.yaml": ("nasiam/search_simclr_imagenet.yaml",
                                             ["--model.init_args.head", "{run}/genotypes/genotype.json"]),
    "nasiam/tiny_linear.yaml": ("nasiam/tiny.yaml", ["--model.init_args.source", "{run}"]),
    "alphazzle/finetune.yaml": ("alphazzle/tiny.yaml", ["--model.init_args.init_weights", "{run}/checkpoints/last.ckpt"]),
}
# configs that cannot run without step one (they read its outputs); every other step two also runs alone
NEEDS_UPSTREAM = {"nasiam/linear_simsiam.yaml", "nasiam/linear_moco.yaml", "nasiam/linear_simclr.yaml",
                  "nasiam/linear_imagenet.yaml", "robust_pruning/paper.yaml", "nasiam/pretrain_moco_imagenet.yaml",
                  "nasiam/pretrain_simclr_imagenet.yaml", "nasiam/tiny_linear.yaml"}


def _rel(path: Path) -> str:
    return path.relative_to(CONFIGS).as_posix()


@dataclass
class Case:
    configs: list[Path]
    upstream: str | None = None  # id of the case whose run folder step two reads
    flags: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return " + ".join(_rel(p) for p in self.configs) + (f" after {self.upstream}" if self.upstream else "")


def _cases() -> list[Case]:
    cases: dict[str, Case] = {}
    for path in sorted(CONFIGS.rglob("*.yaml")):
        rel = _rel(path)
        if rel.split("/")[0] in HARDWARE_OVERLAYS:
            continue
        if not is_overlay(path):
            if rel not in NEEDS_UPSTREAM:
                cases.setdefault(rel, Case([path]))
            continue
        chain = composes_with(path)[0]
        base = _rel(chain[0])
        case = Case([*chain, path], *(CHAINS[base] if base in NEEDS_UPSTREAM else (None, [])))
        cases[case.id] = case
    for rel, (first, flags) in CHAINS.items():
        step_two = [CONFIGS / rel] if not is_overlay(CONFIGS / rel) else [*composes_with(CONFIGS / rel)[0],
                                                                           CONFIGS / rel]
        case = Case(step_two, upstream=first, flags=flags)
        if len(step_two) > 1:  # an overlay that needs its base's weights runs only after the base
            cases.pop(" + ".join(_rel(p) for p in step_two), None)
        cases[case.id] = case
    return list(cases.values())


CASES = _cases()
BY_ID = {c.id: c for c in CASES}
# under bf16 these families validate too: their evaluation runs layers training does not (MCTS evaluators, mesh
# metrics and ops); elsewhere validation repeats the training step's layers without gradients
BF16_VALIDATES = {"alphazzle", "meshrec"}
UPSTREAM = {first for first, _ in CHAINS.values()}  # the cases whose run folder a chain's step two reads
BF16_CASES = CASES


def _merged(configs: list[Path]) -> dict:
    """The YAMLs deep-merged in order (a new ``class_path`` drops the old ``init_args``), enough to find classes."""
    def merge(a, b):
        if not (isinstance(a, dict) and isinstance(b, dict)):
            return b
        if "class_path" in b and b["class_path"] != a.get("class_path"):
            return b
        return {**a, **{k: merge(a.get(k), v) for k, v in b.items()}}

    out: dict = {}
    for p in configs:
        out = merge(out, yaml.safe_load(p.read_text()) or {})
    return out


def data_target(cfg: dict) -> tuple[str, str, dict]:
    """(flag prefix of the datamodule that reads files, its class path, its init_args); follows wrappers."""
    prefix, spec = "data", cfg["data"]
    while isinstance((spec.get("init_args") or {}).get("datamodule"), dict):
        prefix, spec = f"{prefix}.init_args.datamodule", spec["init_args"]["datamodule"]
    return f"{prefix}.init_args", spec["class_path"], spec.get("init_args") or {}


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("formats")


# copies with fewer classes than the real dataset (ImageNet's 1000 class folders would be a large copy): the model's
# head is sized to the copy, the only change to a network, since a head larger than the data's class count is the
# misconfiguration callbacks/preflight.py stops at setup
COPY_CLASSES = {"ImageNetDataModule": 2}


def _class(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


_BUILT: dict[str, dict[str, str]] = {}
_RUNS: dict[tuple[str, bool], "Run"] = {}


@dataclass
class Run:
    folder: Path
    metrics: dict[str, float]
    params: int
    checkpoints: list[Path]
    dtypes: set = field(default_factory=set)  # what the layers returned in the first step


def command_line(case: Case, data_root: Path, folder: Path, bf16: bool) -> list[str]:
    cfg = _merged(case.configs)
    prefix, class_path, init = data_target(cfg)
    val_size = int(init.get("val_size") or 0)
    built = f"{class_path}-{val_size}"  # one copy per dataset and training-set size (val_size is carved out of it)
    if built not in _BUILT:
        _BUILT[built] = fixtures_formats.build(class_path, data_root / f"{class_path.rsplit('.', 1)[-1]}-{val_size}",
                                               val_size)
    args = [*[a for p in case.configs for a in ("--config", str(p))]]
    for key, value in _BUILT[built].items():
        args += [f"--{prefix}.{key}", value]
    for key in ("batch_size", "mix_batch_size"):  # batch sizes
        if key in init or key == "batch_size":
            args += [f"--{prefix}.{key}", "2"]
    args += [f"--{prefix}.num_workers", "0"]
    args += ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto",  # hardware
             "--trainer.num_nodes", "1", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
             "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(folder),
             "--trainer.max_epochs", "1", "--trainer.max_steps", "2", "--trainer.limit_train_batches", "2",  # length
             "--trainer.limit_val_batches", "1" if not bf16 or _family(case) in BF16_VALIDATES else "0",
             "--trainer.limit_test_batches", "1",
             "--trainer.check_val_every_n_epoch", "1", "--trainer.val_check_interval", "1.0",
             "--trainer.num_sanity_val_steps", "0"]  # the validation at the end of the two steps runs the same code
    if bf16:
        args += ["--trainer.precision", "bf16-mixed"]
    model_init = (cfg.get("model") or {}).get("init_args") or {}
    if str(model_init.get("source", "")).startswith("timm:") and "HF_HUB_CACHE" not in _BUILT:
        # the source weights come from the local timm cache: a seeded random ResNet152 stands in for them
        _BUILT["HF_HUB_CACHE"] = {"path": str(fixtures_formats.fake_timm_resnet152(data_root / "hf_hub",
                                                                               model_init["source"][5:]))}
        os.environ["HF_HUB_CACHE"] = _BUILT["HF_HUB_CACHE"]["path"]
    net_init = model_init.get("net_kwargs") or {}
    if (model_init.get("pretrained_backbone") or net_init.get("pretrained_backbone")) and "TORCH_HOME" not in _BUILT:
        # ImageNet encoder weights come from the torchvision cache: seeded random weights stand in for them
        arch = model_init.get("encoder") or net_init.get("encoder") or "resnet50"
        _BUILT["TORCH_HOME"] = {"path": str(fixtures_formats.fake_torchvision_weights(data_root / "torch_home", arch))}
        os.environ["TORCH_HOME"] = _BUILT["TORCH_HOME"]["path"]
    n_copy = COPY_CLASSES.get(class_path.rsplit(".", 1)[-1])
    if n_copy and "num_classes" in inspect.signature(_class(cfg["model"]["class_path"])).parameters:
        args += ["--model.init_args.num_classes", str(n_copy)]  # the head sized to the copy (callbacks/preflight.py)
    if "num_simulations" in model_init:  # MCTS playouts per move are run length, like steps
        args += ["--model.init_args.num_simulations", "8"]
    if case.upstream:
        args += [f.format(run=run_case(_upstream(case), data_root, bf16=False).folder) for f in case.flags]
    return args


def _upstream(case: Case) -> Case:
    return BY_ID[case.upstream] if case.upstream in BY_ID else Case([CONFIGS / case.upstream])


class _AutocastProbe(Callback):
    """Records the dtypes the model's modules return in the first training step: is autocast really on?"""

    def __init__(self):
        self.dtypes: set[torch.dtype] = set()
        self._handles: list = []

    def _hook(self, module, args, out):
        if torch.is_tensor(out):
            self.dtypes.add(out.dtype)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            self._handles = [m.register_forward_hook(self._hook) for m in pl_module.modules()]

    def on_train_batch_end(self, *args):
        for handle in self._handles:
            handle.remove()
        self._handles = []


def run_case(case: Case, data_root: Path, bf16: bool) -> Run:
    """Run ``case`` once per session and precision, in-process through the zoo's CLI."""
    from lightning.pytorch import LightningDataModule, LightningModule

    from zoo.cli import ZooCLI

    key = (case.id, bf16)
    if key in _RUNS:
        return _RUNS[key]
    if case.upstream:  # step one first, so that it takes its own folder
        run_case(_upstream(case), data_root, bf16=False)
    folder = data_root.parent / f"run-{len(_RUNS)}{'-bf16' if bf16 else ''}"
    args = command_line(case, data_root, folder, bf16)
    if bf16:  # the bf16 runs check the training step only: they write no checkpoint (disk)
        args += ["--checkpoint.save_top_k", "0", "--checkpoint.save_last", "false"]
    cli = ZooCLI(LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                 save_config_kwargs={"overwrite": True}, parser_kwargs={"allow_abbrev": False}, args=args, run=False)
    for callback in cli.trainer.callbacks:  # run length: a kNN monitor's bank is two batches, like the steps
        if type(callback).__name__ == "KNNMonitor":
            callback.max_bank_batches = 2
    probe = _AutocastProbe()
    cli.trainer.callbacks.append(probe)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)  # what `zoo fit` runs, then its test of the best checkpoint
    scalars = lambda: {k: float(v) for k, v in cli.trainer.callback_metrics.items()  # noqa: E731
                       if torch.is_tensor(v) and v.numel() == 1}
    metrics = scalars()
    if cli.config.get("test_after_fit", True) and not bf16:
        best = getattr(cli.trainer.checkpoint_callback, "best_model_path", "") or None
        cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=best)
        metrics.update(scalars())
    run = Run(folder, metrics, sum(p.numel() for p in cli.model.parameters()),
              sorted((folder / "checkpoints").glob("*.ckpt")), probe.dtypes)
    _RUNS[key] = run
    return run


def _assert_finite_losses(run: "Run", label: str) -> None:
    losses = {k: v for k, v in run.metrics.items() if "loss" in k.split("/")[-1]}
    assert losses, f"{label}: no loss among the logged metrics {sorted(run.metrics)}"
    bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
    assert not bad, f"{label}: non-finite losses {bad}"


RELOAD_SERVER = """
import json, os, sys, torch, importlib
import zoo
for line in sys.stdin:  # one job a line: {"case", "params", "checkpoints"}; one answer line each
    job = json.loads(line)
    failures = []
    for path in job["checkpoints"]:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            module_name, _, name = payload["hyper_parameters"]["_class_path"].rpartition(".")
            cls = getattr(importlib.import_module(module_name), name)
            module = cls.load_from_checkpoint(path, map_location="cpu", weights_only=True)
            n = sum(p.numel() for p in module.parameters())
            assert n == job["params"], f"{n} parameters after reload, {job['params']} at the end of fit"
            state = module.state_dict()
            diff = [k for k, v in payload["state_dict"].items() if not torch.equal(state[k].cpu(), v)]
            assert not diff, f"tensors differ after reload: {diff[:5]}"
            net = zoo.load(path)
            assert isinstance(net, torch.nn.Module) and not net.training
        except Exception as err:
            failures.append(f"{path}: {type(err).__name__}: {str(err)[:300]}")
        payload = module = net = None
    print("RELOADED " + json.dumps(failures), flush=True)
"""


# the stand-in pretrained weights some runs start from: a checkpoint must reload without them, as on a new machine
WEIGHT_CACHES = ("TORCH_HOME", "HF_HUB_CACHE")


class Reloader:
    """A separate Python process, started once per pytest worker, that reloads checkpoints as a new user would
    (nothing of the training process's state: imports, registries, caches); one process for all cases, since a
    fresh interpreter per case would cost its import time again for each of the ~80 cases."""

    def __init__(self, log: Path):
        self._log = open(log, "w")
        self._proc = subprocess.Popen([sys.executable, "-c", RELOAD_SERVER], cwd=ROOT, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._log, text=True,
                                      env={**{k: v for k, v in os.environ.items() if k not in WEIGHT_CACHES},
                                           "PYTHONPATH": str(ROOT)})
        self.log = log

    def __call__(self, case: str, params: int, checkpoints: list[Path]) -> list[str]:
        assert self._proc.poll() is None, f"the reload process exited: {self.log.read_text()[-3000:]}"
        self._proc.stdin.write(json.dumps({"case": case, "params": params,
                                           "checkpoints": [str(p) for p in checkpoints]}) + "\n")
        self._proc.stdin.flush()
        for line in self._proc.stdout:
            if line.startswith("RELOADED "):
                return json.loads(line[len("RELOADED "):])
        raise AssertionError(f"the reload process died on {case}: {self.log.read_text()[-3000:]}")

    def close(self) -> None:
        self._proc.stdin.close()
        self._proc.wait(timeout=60)
        self._log.close()


@pytest.fixture(scope="session")
def reloader(data_root):
    server = Reloader(data_root.parent / "reload.log")
    yield server
    server.close()


@pytest.fixture(scope="session", autouse=True)
def _remove_runs_at_end():
    yield
    for run in _RUNS.values():  # the checkpoints kept for chains, the genotypes, configs
        shutil.rmtree(run.folder, ignore_errors=True)


def _family(case: Case) -> str:
    return _rel(case.configs[0]).split("/")[0]


# found by this test, not fixed yet (reported to the lead): strict, so the mark must go when the cause is fixed
KNOWN_FAILING: dict[str, str] = {}
def _params(cases: list[Case], known: dict[str, str]) -> list:
    """One param per case, grouped by paper family on one xdist worker; a known failure is a strict xfail."""
    return [pytest.param(c, id=c.id, marks=[pytest.mark.xdist_group(f"paper-{_family(c)}"),
                                            *([pytest.mark.xfail(strict=True, reason=known[c.id])]
                                              if c.id in known else [])]) for c in cases]


@pytest.mark.parametrize("case", _params(CASES, KNOWN_FAILING))
def test_config_fits_two_steps_tests_and_reloads(case, data_root, reloader):
    run = run_case(case, data_root, bf16=False)
    _assert_finite_losses(run, case.id)
    assert (run.folder / "checkpoints" / "last.ckpt").is_file(), f"{case.id}: no last.ckpt in {run.folder}"
    if all(yaml.safe_load(p.read_text()).get("test_after_fit", True) is not False for p in case.configs):
        assert any(k.startswith("test/") for k in run.metrics), f"{case.id}: test logged nothing: {sorted(run.metrics)}"
    failures = reloader(case.id, run.params, run.checkpoints)
    assert not failures, "\n".join(failures)
    if case.id not in UPSTREAM:  # reloaded: free the disk (a chain's step two reads its step one's files)
        for path in run.checkpoints:
            path.unlink()


@pytest.mark.parametrize("case", _params(BF16_CASES, {}))
def test_config_trains_under_bf16_autocast(case, data_root):
    run = run_case(case, data_root, bf16=True)
    _assert_finite_losses(run, f"{case.id} (bf16-mixed)")
    assert torch.bfloat16 in run.dtypes, f"{case.id}: no layer returned bfloat16 under bf16-mixed: {run.dtypes}"
