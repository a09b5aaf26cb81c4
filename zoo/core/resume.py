"""Check the checkpoint a run resumes from before Lightning opens it, so a corrupt ``last.ckpt`` gives a message
that names the file and the previous good checkpoint, instead of torch's zip-reader traceback.

Nothing is written: the unreadable file stays where it is until the user decides what to do with it.
"""
from __future__ import annotations

import zipfile
from pathlib import Path


def checkpoint_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be a torch checkpoint (``None`` when it looks complete). Reads the zip directory and
    checks every member's CRC; nothing is unpickled."""
    path = Path(path)
    if not path.is_file():
        return "the file does not exist"
    if path.stat().st_size == 0:
        return "the file is empty (0 bytes)"
    if not zipfile.is_zipfile(path):
        return "it is not a zip archive (torch.save's format): truncated, or not a checkpoint"
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
                return f"the zip archive holds no data.pkl (found {names[:5]})"
            bad = zf.testzip()
            if bad is not None:
                return f"member {bad} fails its CRC check (the file is corrupt)"
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        return f"the zip archive is damaged ({type(err).__name__}: {err})"
    return None


def last_checkpoint(dirpath: str | Path) -> Path | None:
    """The newest ``last*.ckpt`` in ``dirpath``, the file Lightning resolves ``ckpt_path="last"`` to."""
    folder = Path(dirpath)
    if not folder.is_dir():
        return None
    found = [p for p in folder.glob("last*.ckpt") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def previous_good_checkpoint(folder: str | Path, exclude: str | Path) -> Path | None:
    """The newest readable ``*.ckpt`` in ``folder`` other than ``exclude``."""
    folder, exclude = Path(folder), Path(exclude).resolve()
    if not folder.is_dir():
        return None
    candidates = sorted((p for p in folder.glob("*.ckpt") if p.is_file() and p.resolve() != exclude),
                        key=lambda p: p.stat().st_mtime, reverse=True)
    return next((p for p in candidates if checkpoint_problem(p) is None), None)


def check_resume_checkpoint(ckpt_path: str | None, dirpath: str | Path | None) -> None:
    """Raise ``ValueError`` when the checkpoint ``--ckpt_path`` names (a path, or ``last`` in ``dirpath``) is
    unreadable, naming it and the previous good checkpoint to pass with ``--ckpt_path``; ``None``, ``best``,
    ``hpc`` and a ``last`` that does not exist yet are left to Lightning."""
    if ckpt_path is None or str(ckpt_path) in ("best", "hpc") or str(ckpt_path).startswith("registry"):
        return
    if str(ckpt_path) == "last":
        path = last_checkpoint(dirpath) if dirpath is not None else None
        if path is None:
            return  # Lightning warns that there is nothing to resume from and starts afresh
    else:
        path = Path(ckpt_path)
        if "://" in str(ckpt_path):
            return  # remote filesystems are Lightning's (fsspec) business
        if not path.is_file():
            raise FileNotFoundError(f"--ckpt_path {path}: no such checkpoint file")
    problem = checkpoint_problem(path)
    if problem is None:
        return
    good = previous_good_checkpoint(path.parent, path)
    advice = (f"The previous good checkpoint in {path.parent} is {good}: resume from it with --ckpt_path {good}."
              if good is not None else
              f"No other readable checkpoint is in {path.parent}; run without --ckpt_path to start afresh "
              f"(move {path.name} away first to keep it: the next save of last.ckpt would replace it).")
    raise ValueError(f"cannot resume: checkpoint {path} is unreadable ({problem}); expected a complete checkpoint "
                     f"written by torch.save. It was left untouched. {advice}")
