"""README.md: short, and its model table is the one tools/model_table.py generates from the registry."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

import zoo
from zoo import hub
from zoo.registry import unified_metrics

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _tool():
    spec = importlib.util.spec_from_file_location("model_table", ROOT / "tools" / "model_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows() -> list[list[str]]:
    block = README.split("model-table:start", 1)[1].split("model-table:end", 1)[0]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in block.splitlines()[3:] if line.startswith("| `")]


def test_readme_is_short():
    assert len(README.splitlines()) <= 200


def test_model_table_is_the_generated_one():
    assert _tool().render(README) == README, "README.md's model table is stale: run python tools/model_table.py"


def test_table_covers_every_registered_model_once_per_paper():
    by_paper: dict[str, set[str]] = {}
    for name in zoo.list_models():
        by_paper.setdefault(zoo.get_entry(name).paper, set()).add(name)
    rows = _rows()
    assert len(rows) == len(by_paper)
    for models, paper, *_ in rows:
        names = set(re.findall(r"`([a-z0-9_]+)`\*?", models))
        group = next(g for p, g in by_paper.items() if f"[{p}]" in paper)
        more = re.search(r"and (\d+) more", models)
        assert names <= group and len(names) + (int(more.group(1)) if more else 0) == len(group)
        for name in group:
            if zoo.get_entry(name).weights is not None:
                assert f"`{name}`*" in models


def test_table_results_are_the_shipped_files_numbers_and_commands_exist():
    for models, _, _, result, command in _rows():
        weighted = [n for n in re.findall(r"`([a-z0-9_]+)`\*", models)]
        metadata = {}
        for name in weighted:
            w = zoo.get_entry(name).weights
            metadata.update(unified_metrics(hub.load_state(str(hub.PACKAGE_DIR / w.path), sha256=w.sha256)["metadata"]))
        pairs = re.findall(r"((?:test|val)/[\w@.]+) (-?[\d.]+)", result.split("; the command prints")[0])
        assert pairs, result
        for key, value in pairs:
            assert abs(float(value) - metadata[key]) <= 0.5 * 10 ** -(len(value.split(".")[-1])), (key, value)
        for config in re.findall(r"configs/[\w/]+\.yaml", command):
            assert (ROOT / config).is_file(), config


def test_readme_links_resolve():
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


CHECKED = [n for n in zoo.list_models(pretrained=True) if (zoo.get_entry(n).cfg.get("fit_printed") or {}).get("margin")]


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", CHECKED)
def test_the_printed_number_in_the_table_is_what_the_command_prints(name, quickstart_run, tmp_path):
    """A row's 'the command prints' values against a `zoo fit` run of that command (the quickstart's is the suite's
    own run), within the row's margin."""
    from conftest import last_metric, run_zoo

    fit = zoo.get_entry(name).cfg["fit_printed"]
    row = next(r for r in _rows() if f"`{name}`*" in r[0])
    assert fit["command"] in row[4]
    for key, value in fit["metrics"].items():
        assert f"{key} {value:.4g}" in row[3].split("the command prints")[1]
    if name == "quickstart_cnn":
        run = quickstart_run
    else:
        args = fit["command"].split()[1:]
        run_zoo([*args, "--trainer.default_root_dir", str(tmp_path)], timeout=600, threads=1)
        run = tmp_path
    for key, value in fit["metrics"].items():
        measured = last_metric(run / "csv", key)
        assert abs(measured - value) <= fit["margin"], (key, measured, value)
