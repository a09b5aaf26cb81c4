"""Resuming from an unreadable checkpoint names the file and the previous good one, and leaves the bad file alone."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from conftest import QUICKSTART, run_zoo
from zoo.core.resume import check_resume_checkpoint, checkpoint_problem


def _good(path: Path, mtime: float) -> Path:
    torch.save({"state_dict": {"w": torch.arange(4.0)}, "epoch": 1}, path)
    os.utime(path, (mtime, mtime))
    return path


def _truncate(path: Path) -> bytes:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path.read_bytes()


def test_readable_checkpoint_passes_and_broken_ones_are_described(tmp_path: Path) -> None:
    ok = _good(tmp_path / "a.ckpt", time.time())
    assert checkpoint_problem(ok) is None
    check_resume_checkpoint(str(ok), tmp_path)  # no error
    trunc = _good(tmp_path / "b.ckpt", time.time())
    _truncate(trunc)
    assert "not a zip archive" in checkpoint_problem(trunc)
    empty = tmp_path / "c.ckpt"
    empty.write_bytes(b"")
    assert "empty" in checkpoint_problem(empty)
    flipped = _good(tmp_path / "d.ckpt", time.time())
    raw = bytearray(flipped.read_bytes())
    raw[200] ^= 0xFF  # inside the first member's data: the zip directory is intact, the CRC is not
    flipped.write_bytes(bytes(raw))
    assert "CRC" in checkpoint_problem(flipped)


def test_corrupt_last_names_itself_and_the_newest_good_checkpoint(tmp_path: Path) -> None:
    now = time.time()
    _good(tmp_path / "best-epoch001.ckpt", now - 30)
    newest_good = _good(tmp_path / "best-epoch004.ckpt", now - 20)
    newer_bad = _good(tmp_path / "best-epoch005.ckpt", now - 10)  # newer but also broken: not suggested
    _truncate(newer_bad)
    last = _good(tmp_path / "last.ckpt", now)
    before = _truncate(last)
    with pytest.raises(ValueError) as err:
        check_resume_checkpoint("last", tmp_path)
    msg = str(err.value)
    assert f"checkpoint {last} is unreadable" in msg and "expected a complete checkpoint" in msg
    assert f"--ckpt_path {newest_good}" in msg and "best-epoch005" not in msg
    assert last.read_bytes() == before  # never overwritten


def test_no_good_checkpoint_says_so(tmp_path: Path) -> None:
    bad = tmp_path / "run.ckpt"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match=r"run.ckpt is unreadable .*No other readable checkpoint is in"):
        check_resume_checkpoint(str(bad), tmp_path)
    with pytest.raises(FileNotFoundError, match="absent.ckpt: no such checkpoint"):
        check_resume_checkpoint(str(tmp_path / "absent.ckpt"), tmp_path)
    check_resume_checkpoint("last", tmp_path / "nothing-here")  # nothing to resume: left to Lightning


def test_zoo_fit_ckpt_path_last_reports_the_corrupt_file(tmp_path: Path) -> None:
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    good = _good(ckpts / "best-epoch000.ckpt", time.time() - 60)
    last = _good(ckpts / "last.ckpt", time.time())
    before = _truncate(last)
    proc = run_zoo(["fit", "--config", str(QUICKSTART), "--ckpt_path", "last", "--trainer.default_root_dir",
                    str(tmp_path)], check=False, timeout=120, threads=1)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert f"checkpoint {last} is unreadable" in out and f"--ckpt_path {good}" in out
    assert "PytorchStreamReader" not in out
    assert last.read_bytes() == before
