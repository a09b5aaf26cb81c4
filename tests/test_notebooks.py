"""Every notebook in notebooks/ runs top to bottom on the tiny setting, and is stored with its outputs."""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _runner():
    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "tools" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_is_a_quickstart_notebook():
    assert any(nb.name == "quickstart.ipynb" for nb in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_with_its_outputs(path):
    """GitHub shows what is in the file: every code cell ran (tools/run_notebooks.py) and a picture is there."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert all(c.execution_count is not None for c in code), f"{path.name}: run python tools/run_notebooks.py {path}"
    assert _runner().images(nb) >= 1 and not _runner().errors(nb)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path):
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    runner = _runner()
    nb = runner.execute(path, tmp_path)
    assert not runner.errors(nb)
    assert runner.images(nb) >= 1 or any(o.get("output_type") == "display_data" for c in nb.cells
                                          if c.cell_type == "code" for o in c.get("outputs", [])), "no plot produced"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before, "executing a notebook must not rewrite it"
