"""Execute notebooks/*.ipynb top to bottom and store them with their outputs, so GitHub shows the pictures.

tests/test_notebooks.py runs the same :func:`execute` without writing the files back.

    python tools/run_notebooks.py                  # every notebook (one thread each, one after the other)
    python tools/run_notebooks.py notebooks/kdl.ipynb
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def execute(path: Path, workdir: str | os.PathLike, timeout: int = 300):
    """The notebook at ``path`` executed in ``workdir`` (runs and downloads land there), as an nbformat object."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


def errors(nb) -> list:
    """The error outputs of an executed notebook."""
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]


def images(nb) -> int:
    """How many image outputs an executed notebook holds."""
    return sum("image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {})
               for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def tidy(nb):
    """Drop what changes on every run and says nothing to a reader: stderr streams (progress bars, W&B lines) and
    execution timestamps."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.get("name") == "stderr")]
        cell.metadata.pop("execution", None)
    return nb


def main(argv: list[str] | None = None) -> int:
    import nbformat

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks to run (default: all under notebooks/)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    failed = 0
    for path in args.paths or NOTEBOOKS:
        start = time.time()
        try:
            with tempfile.TemporaryDirectory(prefix="zoo-nb-") as workdir:
                nb = execute(path, workdir)
        except Exception as err:  # a failing cell raises CellExecutionError with the cell's traceback
            failed += 1
            print(f"{path}: failed, not written: {str(err)[-2000:]}", file=sys.stderr)
            continue
        if errors(nb):
            failed += 1
            print(f"{path}: {len(errors(nb))} cell(s) failed; not written", file=sys.stderr)
            continue
        nbformat.write(tidy(nb), path)
        print(f"{path}: {images(nb)} picture(s), {time.time() - start:.0f} s")
    return int(failed > 0)


if __name__ == "__main__":
    raise SystemExit(main())
