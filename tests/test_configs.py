"""Every shipped config: model and datamodule never share a hyperparameter name with different values.

Lightning merges both objects' hparams for the loggers and stops ``fit`` on such a clash; this catches it for the
paper configs too, which no CPU test runs. Effective values are the constructor defaults overlaid by the config.
"""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _full(path: Path) -> bool:
    """A config naming both classes (overlays that only change init_args are checked through their base)."""
    cfg = yaml.safe_load(path.read_text()) or {}
    return all(isinstance(cfg.get(k), dict) and "class_path" in cfg[k] for k in ("model", "data"))


CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if _full(p))


def _effective_args(spec: dict) -> dict:
    module, _, name = spec["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    args = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}
    args.update(spec.get("init_args") or {})
    return args


def _same(a, b) -> bool:
    norm = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731 - YAML gives lists, signatures tuples
    return norm(a) == norm(b)


def _clash(cfg: dict) -> dict:
    model, data = _effective_args(cfg["model"]), _effective_args(cfg["data"])
    return {k: (model[k], data[k]) for k in set(model) & set(data) if not _same(model[k], data[k])}


def test_the_check_finds_a_clash_and_reads_defaults():
    digits = "datamodules.digits.DigitsDataModule"
    cfg = {"model": {"class_path": digits}, "data": {"class_path": digits, "init_args": {"batch_size": 7}}}
    assert set(_clash(cfg)) == {"batch_size"}  # the other side's value is its constructor default
    cfg["model"]["init_args"] = {"batch_size": 7, "image_size": (8, 8)}
    cfg["data"]["init_args"]["image_size"] = [8, 8]
    assert _clash(cfg) == {}
    assert len(CONFIGS) >= 20, [p.name for p in CONFIGS]


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(ROOT / "configs")) for p in CONFIGS])
def test_model_and_data_hyperparameters_do_not_clash(path):
    clash = _clash(yaml.safe_load(path.read_text()))
    assert not clash, f"{path}: model and data disagree on {clash} (rename one argument or make them equal)"
