"""README.md: short; its model table is the one tools/model_table.py generates from the registry, and each number in it
is what the command beside it prints (re-run here within the card's margin, or in make test-paper)."""
from __future__ import annotations

import importlib.util
import re
import statistics
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


def test_table_shows_what_the_commands_print_and_shipped_numbers_only_from_the_same_command():
    """Each weighted row: the card's mean ± std over its seeds and the checkpoint; the shipped file's numbers only where
    the card says the file is one of those seeded runs, and then they are that run's printed values."""
    tool = _tool()
    for models, _, _, result, command in _rows():
        for name in re.findall(r"`([a-z0-9_]+)`\*", models):
            fit = zoo.get_entry(name).cfg["fit_printed"]
            assert f"{tool.mean_std(fit)} ({len(fit['seeds'])} seeds; {fit['checkpoint']})" in result
            assert f"`{fit['command']}`" in command
            w = zoo.get_entry(name).weights
            metadata = unified_metrics(hub.load_state(str(hub.PACKAGE_DIR / w.path), sha256=w.sha256)["metadata"])
            shown = result.split("shipped weights:")[1]
            seed = fit["shipped_seed"]
            if seed is None:
                assert "an earlier run" in shown and not re.search(r"(test|val)/", shown), name
                continue
            assert f"the seed-{seed} run" in shown  # tools/tiny_results.py found that run's checkpoint = the file
            i = fit["seeds"].index(seed)
            for key, values in fit["values"].items():  # a float32 file is the run; a float16 copy scores close to it
                tol = 0.5e-4 + 1e-9 if fit["shipped_dtype"] == "float32" else fit["margin"][key]
                assert abs(metadata[key] - values[i]) <= tol, (name, key, metadata[key], values[i])
            pairs = re.findall(r"((?:test|val)/[\w@.]+) (-?[\d.]+)", shown)
            assert [k for k, _ in pairs] == list(fit["mean"]), (name, pairs)
            for key, value in pairs:
                assert abs(float(value) - metadata[key]) <= 0.5 * 10 ** -(len(value.split(".")[-1])), (key, value)
        for config in re.findall(r"configs/[\w/]+\.yaml", command):
            assert (ROOT / config).is_file(), config


def test_readme_links_resolve():
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def _tiny():
    spec = importlib.util.spec_from_file_location("tiny_results", ROOT / "tools" / "tiny_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WEIGHTED = zoo.list_models(pretrained=True)
# A row's command runs inside `make test` only where one run costs under RUN_LIMIT_S CPU seconds on one thread (its
# card's `cpu_s`, measured by tools/tiny_results.py); a row whose command the suite already runs reads that run
# (SHARED: quickstart_run, or the tiny_fit fixture's run of the config); the others run in `make test-paper`.
RUN_LIMIT_S = 120
SHARED = {"quickstart_cnn": None, "mrs_digits": "configs/robust_pruning/tiny.yaml"}


def _cpu_s(name: str) -> float:
    fit = zoo.get_entry(name).cfg.get("fit_printed") or {}
    return statistics.mean(fit["cpu_s"]) if fit.get("cpu_s") else float("inf")


def _printed_param(name: str):
    marks = [pytest.mark.slow]
    if SHARED.get(name):
        marks.append(pytest.mark.xdist_group("tiny_" + Path(SHARED[name]).parent.name))
    elif name not in SHARED and _cpu_s(name) >= RUN_LIMIT_S:
        marks += [pytest.mark.paper_scale, pytest.mark.timeout(2400)]
    return pytest.param(name, marks=marks)


def test_every_weighted_card_records_what_its_command_prints():
    """fit_printed: the recipe, per-seed values whose mean and std (n - 1) are the recorded ones, and a margin no
    smaller than tools/tiny_results.py's rule gives them; the rows run in `make test` are cheap enough."""
    tool = _tiny()
    for name in WEIGHTED:
        card = zoo.get_entry(name).cfg
        fit = card["fit_printed"]
        assert fit["command"] == card["recipe"] and tool.steps(fit["command"])
        assert set(fit["values"]) == set(fit["mean"]) == set(fit["std"]) == set(fit["margin"]) == set(tool.METRICS[name])
        n = len(fit["seeds"])
        assert n >= 2 and len(set(fit["seeds"])) == n and len(fit["cpu_s"]) == len(fit["wall_s"]) == len(fit["tested"]) == n
        assert fit["shipped_seed"] is None or fit["shipped_seed"] in fit["seeds"]
        assert fit["shipped_dtype"] in ("float32", "float16")
        for key, values in fit["values"].items():
            assert len(values) == n
            assert fit["mean"][key] == pytest.approx(statistics.mean(values), abs=1e-4), (name, key)
            assert fit["std"][key] == pytest.approx(statistics.stdev(values), abs=1e-4), (name, key)
            assert fit["margin"][key] >= tool.margin(key, values) - 1e-9, (name, key)
        assert fit["checkpoint"].startswith(tool.checkpoint_text(fit["command"], [{"checkpoint": None}]).split(", epoch")[0])
    running = [n for n in WEIGHTED if n not in SHARED and _cpu_s(n) < RUN_LIMIT_S]
    assert sum(_cpu_s(n) for n in running) < 8 * 60, "the printed-number checks would cost make test too much"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", [_printed_param(n) for n in WEIGHTED])
def test_the_printed_number_in_the_table_is_what_the_command_prints(name, request, tmp_path):
    """A row's command, run as written (the configs' own seed), prints each of the row's metrics within the card's
    margin of the mean over seeds that the table shows; the run is the suite's own where it already makes one."""
    tool = _tiny()
    fit = zoo.get_entry(name).cfg["fit_printed"]
    row = next(r for r in _rows() if f"`{name}`*" in r[0])
    assert f"`{fit['command']}`" in row[4] and _tool().mean_std(fit) in row[3]
    if name in SHARED:
        run = request.getfixturevalue("tiny_fit")(SHARED[name]) if SHARED[name] else request.getfixturevalue("quickstart_run")
        printed = tool.printed_metrics(run)
    else:
        result = tool.run_once(name, fit["command"], None, tmp_path, timeout=1800)
        printed = result["metrics"]
        assert tool.checkpoint_text(fit["command"], [result]).split(", epoch")[0] == fit["checkpoint"].split(", epoch")[0]
    for key, mean in fit["mean"].items():
        assert key in printed, (key, sorted(printed))
        assert abs(printed[key] - mean) <= fit["margin"][key], (key, printed[key], mean, fit["margin"][key])
